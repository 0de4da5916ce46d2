// Resizing, one resizer for the whole program: Pillow's Image.resize for 8-bit images, bit for bit (A1111 resizes
// init images, masks and hires-fix images with it; tests/data/pil_resize holds Pillow's own outputs), exact area
// averaging for the emoji data set, and torch.nn.functional.interpolate for latents (A1111's "Latent" upscalers and
// its "latent upscale" resize mode).
#pragma once
#include <array>
#include <string>

#include "core/tensor.h"
#include "io/image.h"

namespace pigment {

// Pillow's filters (Image.Resampling: NEAREST, BOX, BILINEAR, HAMMING, BICUBIC with a = -0.5, LANCZOS with a = 3).
// As Pillow's ImagingResample: two separable passes (horizontal first, each rounded to 8 bits), the support widened
// by the scale when shrinking, coefficients normalised in double and then turned into 22-bit fixed point, the
// accumulator rounded and clipped as Pillow's clip8. NEAREST is Pillow's affine scale (source position summed step
// by step). RGBA is resized premultiplied (RGBa) and divided back, as Image.resize does; gray and RGB directly.
enum class ImageFilter { Nearest, Box, Bilinear, Hamming, Bicubic, Lanczos };
Image resize_image(const Image& img, int width, int height, ImageFilter filter);
// Image.resize(size, filter, box): only the source region box = (x0, y0, x1, y1) (C floats, as Pillow) is resized; an
// empty box side (x0 == x1) is allowed, as Pillow allows it (A1111's "resize and fill" uses it for the borders).
Image resize_image(const Image& img, int width, int height, ImageFilter filter, const std::array<float, 4>& box);

// Exact area averaging for downscaling (as OpenCV's INTER_AREA means it): each output pixel is the mean of the source
// area it covers, partly covered source pixels weighted by the covered fraction. Weights are exact integers (source
// pixel j spans [j·W, (j+1)·W) and output pixel i spans [i·w, (i+1)·w) in units of 1/(w·W)), both passes are summed
// in 64-bit integers and rounded once (half up), so the result is exact and identical on every machine.
// Upscaling is refused: use resize_image. (Pillow's BOX differs where the ratio is not an integer: it gives whole
// source pixels weight 0 or 1.)
Image resize_area(const Image& img, int width, int height);

// torch.nn.functional.interpolate(x, size=(h, w), mode, align_corners=False, antialias) for x [N, C, H, W] f32.
// mode: "nearest" | "nearest-exact" | "bilinear" | "bicubic"; antialias only for bilinear/bicubic (PIL-style
// filters, bicubic a = -0.5; without it bicubic uses a = -0.75 with clamped borders).
Tensor interpolate(const Tensor& x, int64_t height, int64_t width, const std::string& mode, bool antialias);

}  // namespace pigment
