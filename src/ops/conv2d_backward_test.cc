#include <gtest/gtest.h>

#include "ops/backward.h"
#include "ops/grad_check_test_util.h"

namespace pigment::ops {
namespace {
using testing::Doubles;
using testing::doubles;
using testing::grad_close;
using testing::numeric_grad;
using testing::randn;
using testing::rel_err;
using testing::same_bits_at;

struct ConvCase {
  int64_t N, C, H, W, O, kh, kw;
  Conv2dParams p;
};

int64_t out_h(const ConvCase& c) { return (c.H + c.p.pad_top + c.p.pad_bottom - c.kh) / c.p.stride + 1; }
int64_t out_w(const ConvCase& c) { return (c.W + c.p.pad_left + c.p.pad_right - c.kw) / c.p.stride + 1; }

// The forward convolution with bias, in double.
Doubles conv_d(const Doubles& x, const Doubles& w, const Doubles& b, const ConvCase& c) {
  const int64_t Ho = out_h(c), Wo = out_w(c);
  Doubles y(size_t(c.N * c.O * Ho * Wo));
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.O; ++o)
      for (int64_t oy = 0; oy < Ho; ++oy)
        for (int64_t ox = 0; ox < Wo; ++ox) {
          double s = b[size_t(o)];
          for (int64_t ci = 0; ci < c.C; ++ci)
            for (int64_t ky = 0; ky < c.kh; ++ky)
              for (int64_t kx = 0; kx < c.kw; ++kx) {
                const int64_t iy = oy * c.p.stride + ky - c.p.pad_top, ix = ox * c.p.stride + kx - c.p.pad_left;
                if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                s += w[size_t(((o * c.C + ci) * c.kh + ky) * c.kw + kx)] * x[size_t(((n * c.C + ci) * c.H + iy) * c.W + ix)];
              }
          y[size_t(((n * c.O + o) * Ho + oy) * Wo + ox)] = s;
        }
  return y;
}

TEST(Conv2dBackward, ReferenceMatchesFiniteDifferences) {
  const ConvCase cases[] = {
      {1, 3, 5, 7, 4, 3, 3, {2, 1, 0, 0, 1}},  // stride 2, asymmetric padding; a row and a column left over
      {2, 2, 4, 5, 3, 3, 3, Conv2dParams::same(1)},
      {2, 3, 3, 4, 2, 1, 1, {}},                  // 1x1
      {1, 2, 6, 5, 3, 2, 3, {1, 1, 2, 0, 1}},     // non-square kernel, uneven padding
      {1, 2, 7, 6, 2, 3, 3, {2, 0, 0, 1, 1}},     // VAE encoder downsample
  };
  uint32_t seed = 1;
  for (const auto& c : cases) {
    Tensor x = randn({c.N, c.C, c.H, c.W}, seed++), w = randn({c.O, c.C, c.kh, c.kw}, seed++), b = randn({c.O}, seed++);
    Tensor r = randn({c.N, c.O, out_h(c), out_w(c)}, seed++);
    ASSERT_EQ(ref::conv2d(x, w, &b, c.p).shape(), r.shape());
    const Doubles X = doubles(x), Wd = doubles(w), B = doubles(b), R = doubles(r);
    EXPECT_TRUE(grad_close(ref::conv2d_backward_input(r, w, x.shape(), c.p),
                           numeric_grad([&](const Doubles& v) { return conv_d(v, Wd, B, c); }, X, R)))
        << "dx " << shape_str(x.shape()) << " k" << c.kh << "x" << c.kw;
    EXPECT_TRUE(grad_close(ref::conv2d_backward_weight(r, x, w.shape(), c.p),
                           numeric_grad([&](const Doubles& v) { return conv_d(X, v, B, c); }, Wd, R)))
        << "dw " << shape_str(x.shape()) << " k" << c.kh << "x" << c.kw;
    EXPECT_TRUE(grad_close(ref::sum_to_channels(r), numeric_grad([&](const Doubles& v) { return conv_d(X, Wd, v, c); }, B, R)))
        << "db " << shape_str(x.shape());
  }
}

TEST(Conv2dBackward, FastMatchesReference) {
  const ConvCase cases[] = {
      {1, 1, 1, 1, 1, 1, 1, {}},
      {2, 3, 5, 7, 5, 1, 1, {}},                     // 1x1
      {1, 4, 9, 11, 7, 3, 3, Conv2dParams::same(1)},  // few channels
      {2, 33, 17, 13, 35, 3, 3, Conv2dParams::same(1)},
      {1, 16, 16, 16, 24, 3, 3, Conv2dParams::same(1, 2)},  // stride 2 (Downsample2D)
      {1, 8, 10, 10, 8, 3, 3, {2, 0, 0, 1, 1}},             // asymmetric padding (VAE encoder downsample)
      {1, 8, 11, 9, 8, 3, 3, {2, 0, 0, 1, 1}},              // ... with a row left over
      {1, 6, 8, 9, 4, 5, 3, {1, 2, 1, 2, 1}},               // non-square kernel
      {1, 5, 4, 4, 3, 3, 3, {1, 0, 0, 0, 0}},               // no padding
      {1, 64, 32, 32, 64, 3, 3, Conv2dParams::same(1)},     // larger
      {2, 40, 12, 12, 4, 3, 3, Conv2dParams::same(1)},      // to 4 channels (conv_out)
      {1, 96, 8, 8, 160, 1, 1, {}},                         // 1x1 shortcut
  };
  uint32_t seed = 100;
  for (const auto& c : cases) {
    Tensor x = randn({c.N, c.C, c.H, c.W}, seed++);
    Tensor w = randn({c.O, c.C, c.kh, c.kw}, seed++, 1.f / std::sqrt(float(c.C * c.kh * c.kw)));
    Tensor dy = randn({c.N, c.O, out_h(c), out_w(c)}, seed++);
    const std::string what = std::to_string(c.C) + "->" + std::to_string(c.O) + " " + std::to_string(c.H) + "x" +
                             std::to_string(c.W) + " k" + std::to_string(c.kh) + "x" + std::to_string(c.kw) + " s" +
                             std::to_string(c.p.stride);
    for (DType t : {DType::F32, DType::F16}) {
      Tensor wt = w.to(t);
      EXPECT_LT(rel_err(conv2d_backward_input(dy, wt, x.shape(), c.p), ref::conv2d_backward_input(dy, wt, x.shape(), c.p)),
                1e-5)
          << "dx " << what << " " << dtype_name(t);
    }
    EXPECT_LT(rel_err(conv2d_backward_weight(dy, x, w.shape(), c.p), ref::conv2d_backward_weight(dy, x, w.shape(), c.p)),
              1e-5)
        << "dw " << what;
    EXPECT_LT(rel_err(sum_to_channels(dy), ref::sum_to_channels(dy)), 1e-6) << "db " << what;
  }
}

TEST(Conv2dBackward, SameBitsAtAnyThreadCount) {
  Tensor x = randn({2, 32, 20, 20}, 200), w = randn({48, 32, 3, 3}, 201), dy = randn({2, 48, 20, 20}, 202);
  Tensor dy2 = randn({2, 48, 10, 10}, 203), w1 = randn({48, 32, 1, 1}, 204);
  const Conv2dParams same = Conv2dParams::same(1), down = Conv2dParams::same(1, 2);
  EXPECT_TRUE(same_bits_at([&] { return conv2d_backward_input(dy, w, x.shape(), same); }));
  EXPECT_TRUE(same_bits_at([&] { return conv2d_backward_input(dy2, w, x.shape(), down); }));
  EXPECT_TRUE(same_bits_at([&] { return conv2d_backward_input(dy, w1, x.shape(), {}); }));
  EXPECT_TRUE(same_bits_at([&] { return conv2d_backward_weight(dy, x, w.shape(), same); }));
  EXPECT_TRUE(same_bits_at([&] { return conv2d_backward_weight(dy2, x, w.shape(), down); }));
  EXPECT_TRUE(same_bits_at([&] { return conv2d_backward_weight(dy, x, w1.shape(), {}); }));
  EXPECT_TRUE(same_bits_at([&] { return sum_to_channels(dy); }));
}

TEST(Conv2dBackward, BadShapesThrow) {
  Tensor w = Tensor::zeros({4, 3, 3, 3});
  EXPECT_THROW(conv2d_backward_input(Tensor::zeros({1, 4, 6, 6}), w, {1, 3, 7, 7}, {}), Error);  // output is 5x5
  EXPECT_THROW(conv2d_backward_input(Tensor::zeros({1, 4, 6, 6}), w, {1, 2, 8, 8}, {}), Error);  // channels
  EXPECT_THROW(conv2d_backward_weight(Tensor::zeros({1, 5, 6, 6}), Tensor::zeros({1, 3, 8, 8}), w.shape(), {}), Error);
}

}  // namespace
}  // namespace pigment::ops
