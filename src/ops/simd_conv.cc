// SIMD convolution kernels (see simd_kernels.h): 3x3 convolutions with few output channels.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/simd_conv.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/highway.h>

#include "ops/simd_kernels.h"

HWY_BEFORE_NAMESPACE();
namespace pigment::ops::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// P vectors of output pixels starting at x0 of output row `row`, all O channels: for each input channel and kernel
// row, three loads (the pixels one left, at, one right) feed 3·O·P multiply-adds. At the image's left and right edge
// the shifted vector is the centre one moved by a lane, with a zero (the padding) shifted in.
template <int O, int P>
HWY_INLINE void Strip(const float* x, int64_t C, int64_t H, int64_t W, const float* wt, const float* bias,
                      int64_t row, int64_t x0, float* y) {
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  HWY_ALIGN int32_t left_idx[64], right_idx[64];  // at most 64 lanes of float on any target
  for (int64_t i = 0; i < L; ++i) {
    left_idx[i] = int32_t(i == 0 ? 0 : i - 1);
    right_idx[i] = int32_t(i == L - 1 ? L - 1 : i + 1);
  }
  const auto to_left = hn::SetTableIndices(d, left_idx), to_right = hn::SetTableIndices(d, right_idx);
  const auto not_first = hn::Not(hn::FirstN(d, 1)), not_last = hn::FirstN(d, size_t(L - 1));
  VF acc[O][P];
  for (int o = 0; o < O; ++o)
    for (int p = 0; p < P; ++p) acc[o][p] = hn::Set(d, bias ? bias[o] : 0.f);
  for (int64_t c = 0; c < C; ++c)
    for (int ky = 0; ky < 3; ++ky) {
      const int64_t r = row + ky - 1;
      if (r < 0 || r >= H) continue;
      const float* xr = x + (c * H + r) * W;
      const float* wk = wt + (c * 3 + ky) * 3 * O;  // [kx][o]
      VF wv[3][O];
      for (int kx = 0; kx < 3; ++kx)
        for (int o = 0; o < O; ++o) wv[kx][o] = hn::Set(d, wk[kx * O + o]);
      for (int p = 0; p < P; ++p) {
        const int64_t b = x0 + p * L;
        const VF mid = hn::LoadU(d, xr + b);
        const VF lft = b > 0 ? hn::LoadU(d, xr + b - 1)
                             : hn::IfThenElseZero(not_first, hn::TableLookupLanes(mid, to_left));
        const VF rgt = b + L < W ? hn::LoadU(d, xr + b + 1)
                                 : hn::IfThenElseZero(not_last, hn::TableLookupLanes(mid, to_right));
        for (int o = 0; o < O; ++o) {
          acc[o][p] = hn::MulAdd(wv[0][o], lft, acc[o][p]);
          acc[o][p] = hn::MulAdd(wv[1][o], mid, acc[o][p]);
          acc[o][p] = hn::MulAdd(wv[2][o], rgt, acc[o][p]);
        }
      }
    }
  for (int o = 0; o < O; ++o)
    for (int p = 0; p < P; ++p) hn::StoreU(acc[o][p], d, y + (o * H + row) * W + x0 + p * L);
}

template <int O>
void RowO(const float* x, int64_t C, int64_t H, int64_t W, const float* wt, const float* bias, int64_t row,
          float* y) {
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  int64_t x0 = 0;
  for (; x0 + 4 * L <= W; x0 += 4 * L) Strip<O, 4>(x, C, H, W, wt, bias, row, x0, y);
  switch ((W - x0) / L) {
    case 3: Strip<O, 3>(x, C, H, W, wt, bias, row, x0, y); break;
    case 2: Strip<O, 2>(x, C, H, W, wt, bias, row, x0, y); break;
    case 1: Strip<O, 1>(x, C, H, W, wt, bias, row, x0, y); break;
    default: break;
  }
}

void Conv3x3NarrowRowImpl(const float* x, int64_t C, int64_t H, int64_t W, const float* wt, const float* bias, int O,
                          int64_t row, float* y) {
  switch (O) {
    case 1: RowO<1>(x, C, H, W, wt, bias, row, y); break;
    case 2: RowO<2>(x, C, H, W, wt, bias, row, y); break;
    case 3: RowO<3>(x, C, H, W, wt, bias, row, y); break;
    case 4: RowO<4>(x, C, H, W, wt, bias, row, y); break;
    default: break;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace pigment::ops::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace pigment::ops::simd {
HWY_EXPORT(Conv3x3NarrowRowImpl);

void conv3x3_narrow_row(const float* x, int64_t C, int64_t H, int64_t W, const float* wt, const float* bias, int O,
                        int64_t row, float* y) {
  HWY_DYNAMIC_DISPATCH(Conv3x3NarrowRowImpl)(x, C, H, W, wt, bias, O, row, y);
}
}  // namespace pigment::ops::simd
#endif
