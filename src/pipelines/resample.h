// Resampling as the tools pigment's users compare against do it: PIL's separable filters for 8-bit images
// (A1111 resizes init images, masks and hires-fix images with Image.resize), OpenCV's Gaussian blur for A1111's mask
// blur, and torch.nn.functional.interpolate for A1111's "Latent" hires-fix upscalers.
#pragma once
#include <string>

#include "core/tensor.h"
#include "io/image.h"

namespace pigment {

// PIL resampling filters (Image.NEAREST, BILINEAR, BICUBIC, LANCZOS). Downscaling widens the filter by the scale
// (antialiasing), as PIL does; upscaling uses the plain kernel. Horizontal pass first, rounded to 8 bits between
// passes, as PIL. Coefficients are computed in double (PIL uses 22-bit fixed point), so a value can differ by 1.
enum class ImageFilter { Nearest, Bilinear, Bicubic, Lanczos };
Image resize_image(const Image& img, int width, int height, ImageFilter filter);

// Exact area averaging for downscaling (as OpenCV's INTER_AREA means it): each output pixel is the mean of the source
// area it covers, partly covered source pixels weighted by the covered fraction. Weights are exact integers (source
// pixel j spans [j·W, (j+1)·W) and output pixel i spans [i·w, (i+1)·w) in units of 1/(w·W)), both passes are summed
// in 64-bit integers and rounded once (half up), so the result is exact and identical on every machine.
// Upscaling is refused: use resize_image.
Image resize_area(const Image& img, int width, int height);

// A1111's mask blur: cv2.GaussianBlur with σ = `sigma` and kernel 2·int(2.5σ + 0.5) + 1, along x then y (each pass
// rounded to 8 bits), borders mirrored without repeating the edge (BORDER_REFLECT_101). One channel only.
Image gaussian_blur_a1111(const Image& gray, int sigma_x, int sigma_y);

// torch.nn.functional.interpolate(x, size=(h, w), mode, align_corners=False, antialias) for x [N, C, H, W] f32.
// mode: "nearest" | "nearest-exact" | "bilinear" | "bicubic"; antialias only for bilinear/bicubic (PIL-style
// filters, bicubic a = -0.5; without it bicubic uses a = -0.75 with clamped borders).
Tensor interpolate(const Tensor& x, int64_t height, int64_t width, const std::string& mode, bool antialias);

}  // namespace pigment
