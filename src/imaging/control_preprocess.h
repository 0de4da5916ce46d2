// Control maps for ControlNet, as A1111's ControlNet extension prepares them: the input image is fitted to the
// generation size by one of its three resize modes, then (optionally) run through a preprocessor. Built in: canny
// (OpenCV's cv::Canny, A1111's thresholds 100/200) and "none" (a prepared map passes through, only fitted).
// A1111 runs a preprocessor at its "preprocessor resolution" and resizes the result; pigment runs it on the fitted
// image, which is what A1111's "Pixel Perfect" option amounts to.
#pragma once
#include <string>
#include <vector>

#include "io/image.h"

namespace pigment {

// A1111's resize modes: "Just Resize" stretches to the size; "Crop and Resize" (its default) scales to cover the
// size and crops the centre; "Resize and Fill" scales to fit inside and pads the borders with black.
enum class ControlResize { JustResize, CropAndResize, ResizeAndFill };
// "just-resize" / "crop" / "fill" or A1111's labels ("Just Resize", "Crop and Resize", "Resize and Fill").
ControlResize parse_control_resize(const std::string& name);
// Resized with the one resizer (imaging/resize.h), Pillow's Lanczos, as A1111 resizes its img2img inputs (the
// ControlNet extension itself shrinks with cv::INTER_AREA and enlarges with INTER_CUBIC/LANCZOS4, so a map can
// differ from the extension's by a few levels near edges). The result has the input's channel count.
Image fit_control_image(const Image& img, int width, int height, ControlResize mode = ControlResize::CropAndResize);

// Canny edges (3x3 Sobel, L1 gradient, hysteresis between `low` and `high`) of an RGB or gray 8-bit image; on RGB
// the gradient of the strongest channel counts, as cv::Canny does. Returns an RGB map: 255 on edges, 0 elsewhere.
Image canny_edges(const Image& img, double low = 100, double high = 200);

struct ControlPreprocess {
  std::string name = "none";  // "none" | "canny"
  double low = 100, high = 200;
};
// Every preprocessor name pigment knows.
const std::vector<std::string>& control_preprocessor_names();
// Fits `img` to width x height and applies the preprocessor; a one-line error for an unknown name or bad thresholds.
Image prepare_control_image(const Image& img, int width, int height, const ControlPreprocess& pre,
                            ControlResize mode = ControlResize::CropAndResize);

}  // namespace pigment
