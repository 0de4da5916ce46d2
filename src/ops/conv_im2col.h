// Pieces of the convolution backward shared by the float32 path (conv2d_backward.cc) and Precision::Fast's bf16 one
// (fast_backward.cc): the shape of a convolution, im2col and a blocked transpose, for float and bfloat16 (uint16_t)
// elements alike.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ops/ops.h"

namespace pigment::ops::detail {

struct ConvShape {
  int64_t N, C, H, W, O, kh, kw, Ho, Wo;
};

// Rows (c, ky, kx) × columns (oy, ox) of one image: the input pixel each kernel tap meets at each output pixel
// (zero in the padding). Row r starts at col + r·ld (ld >= Ho·Wo: several images side by side).
template <typename T>
void im2col(const T* x, const ConvShape& s, const Conv2dParams& p, T* col, int64_t ld = 0) {
  const int64_t P = s.Ho * s.Wo, taps = s.kh * s.kw;
  if (ld == 0) ld = P;
#pragma omp parallel for schedule(static) if (s.C * taps * P > 65536)
  for (int64_t row = 0; row < s.C * taps; ++row) {
    const int64_t c = row / taps, ky = row % taps / s.kw, kx = row % s.kw;
    const T* xc = x + c * s.H * s.W;
    T* out = col + row * ld;
    for (int64_t oy = 0; oy < s.Ho; ++oy) {
      const int64_t iy = oy * p.stride + ky - p.pad_top;
      T* o = out + oy * s.Wo;
      if (iy < 0 || iy >= s.H) {
        std::memset(o, 0, size_t(s.Wo) * sizeof(T));
        continue;
      }
      const T* xr = xc + iy * s.W;
      if (p.stride == 1) {
        // Columns whose input column ix = ox + kx - pad_left lies inside the row; zeros around them.
        const int64_t lo = std::clamp<int64_t>(p.pad_left - kx, 0, s.Wo),
                      hi = std::clamp<int64_t>(s.W + p.pad_left - kx, lo, s.Wo);
        std::memset(o, 0, size_t(lo) * sizeof(T));
        std::memcpy(o + lo, xr + lo + kx - p.pad_left, size_t(hi - lo) * sizeof(T));
        std::memset(o + hi, 0, size_t(s.Wo - hi) * sizeof(T));
      } else {
        for (int64_t ox = 0; ox < s.Wo; ++ox) {
          const int64_t ix = ox * p.stride + kx - p.pad_left;
          o[ox] = ix >= 0 && ix < s.W ? xr[ix] : T(0);
        }
      }
    }
  }
}

// out[c, r] = in[r, c] for in [rows, cols], in blocks of 32 x 32 turned in a small local tile: the block is read
// row by row and written row by row, each memory line once. (Writing out[c·rows + r] straight from the reads keeps
// 32 lines `rows` elements apart live at once; with a power-of-two `rows` — 4096 tokens — they all fall into one L1
// set and every store missed: a [4096, 2560] bf16 transpose took ~200 ms, 10x a plain copy.)
// Bands of rows in parallel when large (each output element written once, so the bits never depend on threads).
template <typename T>
void transpose_into(const T* in, int64_t rows, int64_t cols, T* out) {
  constexpr int64_t B = 32;
#pragma omp parallel for schedule(static) if (rows * cols > (int64_t(1) << 18))
  for (int64_t r0 = 0; r0 < rows; r0 += B) {
    T tile[B][B];
    for (int64_t c0 = 0; c0 < cols; c0 += B) {
      const int64_t nr = std::min(rows - r0, B), nc = std::min(cols - c0, B);
      for (int64_t r = 0; r < nr; ++r)
        for (int64_t c = 0; c < nc; ++c) tile[c][r] = in[(r0 + r) * cols + c0 + c];
      for (int64_t c = 0; c < nc; ++c)
        for (int64_t r = 0; r < nr; ++r) out[(c0 + c) * rows + r0 + r] = tile[c][r];
    }
  }
}

}  // namespace pigment::ops::detail
