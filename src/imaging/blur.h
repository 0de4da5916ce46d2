// Blurs and masks as A1111 makes them, with the libraries A1111 calls: OpenCV's cv::GaussianBlur for the mask blur,
// Pillow's GaussianBlur (three box blurs) and its premultiplied paste / alpha composite for "fill" masked content.
#pragma once
#include "io/image.h"

namespace pigment {

// A1111's create_binary_mask: an RGBA mask whose alpha is not all opaque gives its alpha thresholded (> 128 → 255,
// else 0); any other mask is converted to gray as it is (no threshold).
Image binary_mask_a1111(const Image& mask);

// A1111's mask blur: cv::GaussianBlur with kernel (2·int(2.5·blur_x + 0.5) + 1) × 1 and σ = blur_x, then
// 1 × (2·int(2.5·blur_y + 0.5) + 1) with σ = blur_y (OpenCV's own 8-bit path, borders BORDER_REFLECT_101).
// A blur of 0 skips that direction. One channel only.
Image mask_blur_a1111(const Image& gray, int blur_x, int blur_y);
// The inpainting mask as A1111 prepares it: binary_mask_a1111, then mask_blur_a1111 with σ = blur both ways.
Image blurred_mask_a1111(const Image& mask, int blur);

// Pillow's ImageFilter.GaussianBlur(radius) on the raw 8-bit channels (for RGBA the bytes as they are, as Pillow
// blurs an "RGBa" image): three box blurs of the same variance, each with a fractional radius (libImaging/BoxBlur.c:
// 24-bit fixed-point weights, edges repeated), all three along x, then all three along y.
Image pil_gaussian_blur(const Image& img, float radius);

// A1111's masking.fill ("fill" masked content): the part outside `gray_mask` (white = masked) premultiplied, blurred
// with radii 256, 64, 16, 4, 2, 0 and alpha-composited 1, 1, 2, 4, 2, 1 times over an empty canvas, as Pillow does it
// (paste with a mask, GaussianBlur, RGBa → RGBA, alpha_composite), then RGB. `rgb` and `gray_mask` have one size.
Image fill_masked_area(const Image& rgb, const Image& gray_mask);

}  // namespace pigment
