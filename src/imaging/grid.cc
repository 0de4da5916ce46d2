#include "imaging/grid.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "imaging/resize.h"

namespace pigment {

Image make_grid(const std::vector<Image>& pictures, const GridOptions& o) {
  PIG_CHECK(!pictures.empty(), "grid: no pictures");
  PIG_CHECK(o.columns >= 0 && o.columns <= 1000, "grid: columns must be in [0, 1000], got ", o.columns);
  PIG_CHECK(o.cell >= 0 && o.cell <= 4096, "grid: cell must be in [0, 4096], got ", o.cell);
  PIG_CHECK(o.gap >= 0 && o.gap <= 256, "grid: gap must be in [0, 256], got ", o.gap);
  const int n = int(pictures.size());
  const int cols = o.columns > 0 ? std::min(o.columns, n) : int(std::ceil(std::sqrt(double(n))));
  const int rows = (n + cols - 1) / cols;
  const int cw = o.cell > 0 ? o.cell : pictures[0].width, ch = o.cell > 0 ? o.cell : pictures[0].height;
  const int W = cols * cw + (cols + 1) * o.gap, H = rows * ch + (rows + 1) * o.gap;
  PIG_CHECK(int64_t(W) * H <= (int64_t(1) << 28), "grid: ", W, "x", H, " is too large");
  Image out{W, H, 3, std::vector<uint8_t>(size_t(W) * H * 3, 255)};
  for (int i = 0; i < n; ++i) {
    Image p = to_rgb(pictures[size_t(i)]);
    if (p.width != cw || p.height != ch) p = resize_image(p, cw, ch, ImageFilter::Lanczos);
    const int x0 = o.gap + (i % cols) * (cw + o.gap), y0 = o.gap + (i / cols) * (ch + o.gap);
    for (int y = 0; y < ch; ++y)
      std::copy_n(&p.pixels[size_t(y) * cw * 3], size_t(cw) * 3, &out.pixels[(size_t(y0 + y) * W + x0) * 3]);
  }
  return out;
}

}  // namespace pigment
