// A1111's size arithmetic for the hires fix and for "inpaint only masked", and its image resize modes. Pure
// functions, kept apart from the pipeline so that each rule can be tested by hand.
#pragma once
#include <optional>
#include <string>

#include "core/tensor.h"
#include "io/image.h"
#include "imaging/blur.h"
#include "imaging/resize.h"

namespace pigment {

// ---- hires fix (StableDiffusionProcessingTxt2Img.calculate_target_resolution and sample_hr_pass) ----
// With resize_x = resize_y = 0 the target is int(width·scale) × int(height·scale). With one of them set, the other
// follows the aspect ratio. With both set, the image is upscaled to cover resize_x × resize_y with the first pass's
// aspect ratio and the latent is cropped around its centre by truncate_x/y latent pixels.
struct HiresGeometry {
  int upscale_to_x = 0, upscale_to_y = 0;  // A1111's hr_upscale_to_x/y (pixels)
  int latent_w = 0, latent_h = 0;          // the upscaled latent (upscale_to / f, floored)
  int truncate_x = 0, truncate_y = 0;      // latent pixels cropped in total (left gets t/2, right (t+1)/2)
  int width = 0, height = 0;               // the second pass's (and the output's) size in pixels
};
HiresGeometry hires_geometry(int width, int height, double scale, int resize_x, int resize_y, int f);

// A1111 hires-fix upscaler names. Latent ones map to an interpolate() mode; "None", "Lanczos" and "Nearest" upscale
// the decoded image (ESRGAN-type model upscalers are not supported).
struct HiresUpscaler {
  std::string name;       // as written in the infotext
  bool latent = false;
  std::string mode;       // latent: interpolate() mode
  bool antialias = false;
};
// Case-insensitive lookup; an unknown name throws listing the valid ones.
HiresUpscaler find_hires_upscaler(const std::string& name);
std::string hires_upscaler_names();  // "Latent, Latent (antialiased), ..."

// An image upscaler applied to a decoded first pass: A1111's resize_image(0, ...) with that upscaler.
Image upscale_image(const Image& img, int width, int height, const HiresUpscaler& upscaler);

// ---- inpaint only masked (modules/masking.py) ----
struct CropRegion {
  int x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // x2, y2 exclusive
  int width() const { return x2 - x1; }
  int height() const { return y2 - y1; }
  bool operator==(const CropRegion&) const = default;
};
// The bounding box of the mask's non-zero pixels grown by `padding` on each side and clipped to the image
// (get_crop_region_v2); nullopt for an all-black mask.
std::optional<CropRegion> mask_crop_region(const Image& gray_mask, int padding);
// Grows the region to the processing aspect ratio, centred, shifted back inside the image (expand_crop_region).
CropRegion expand_crop_region(CropRegion r, int processing_width, int processing_height, int image_width,
                              int image_height);

// A1111's img2img resize modes (images.resize_image), each with Pillow's Lanczos:
//   JustResize     stretch to the size;
//   CropAndResize  scale to cover the size (w·H/h integer arithmetic as A1111), paste centred, the overflow cut;
//   ResizeAndFill  scale to fit inside, paste centred, the empty borders filled by stretching the edge row/column
//                  (Image.resize with an empty box on that edge, bicubic, as A1111);
//   LatentUpscale  the image is not resized: its latent is (torch bilinear). resize_a1111 treats it as
//                  ResizeAndFill, which is what A1111's resize_image does with mode 3 (it is used so for masks).
enum class ResizeMode { JustResize, CropAndResize, ResizeAndFill, LatentUpscale };
// "just-resize", "crop", "fill", "latent-upscale", A1111's labels or its numbers 0-3; one-line error otherwise.
ResizeMode parse_resize_mode(const std::string& name);
const char* resize_mode_label(ResizeMode m);  // A1111's label
Image resize_a1111(const Image& img, ResizeMode mode, int width, int height);
Image resize_crop(const Image& img, int width, int height);
Image resize_fill(const Image& img, int width, int height);

Image crop_image(const Image& img, const CropRegion& r);
// `base` with `patch` (of the region's size) laid over region r, weighted by `alpha` (gray, base's size):
// out = base·(1 − a) + patch·a; outside r the base is kept.
Image paste_with_alpha(const Image& base, const Image& patch, const CropRegion& r, const Image& alpha);

}  // namespace pigment
