// Contact sheets: pictures side by side in rows, each optionally above a caption line (for READMEs and reports).
#pragma once
#include <string>
#include <vector>

#include "io/image.h"

namespace pigment {

struct GridOptions {
  int columns = 0;        // 0: about square
  int cell = 0;           // each picture scaled (Lanczos) to cell × cell pixels; 0: the first picture's size
  int gap = 4;            // white pixels between cells and around the sheet
};

// The pictures (any sizes; gray, RGB or RGBA, as RGB with alpha dropped) in row-major cells on white.
Image make_grid(const std::vector<Image>& pictures, const GridOptions& options = {});

}  // namespace pigment
