#include <gtest/gtest.h>

#include "ops/ops_test_util.h"

namespace pigment::ops {
namespace {
using testing::close;
using testing::deterministic;
using testing::randn;

struct ConvCase {
  int64_t N, C, H, W, O, kh, kw;
  Conv2dParams p;
  bool bias;
};

Tensor conv_weight(int64_t O, int64_t C, int64_t kh, int64_t kw, uint32_t seed) {
  return randn({O, C, kh, kw}, seed, 1.f / std::sqrt(float(C * kh * kw)));
}

TEST(Conv2d, MatchesReferenceOnOddShapes) {
  const ConvCase cases[] = {
      {1, 1, 1, 1, 1, 1, 1, {}, true},                           // single element
      {2, 3, 5, 7, 5, 1, 1, {}, true},                           // 1x1
      {1, 4, 9, 11, 7, 3, 3, Conv2dParams::same(1), true},       // 3x3, few channels (conv_in-like)
      {2, 33, 17, 13, 35, 3, 3, Conv2dParams::same(1), false},   // odd channels
      {1, 16, 16, 16, 24, 3, 3, Conv2dParams::same(1, 2), true}, // stride 2 (Downsample2D)
      {1, 8, 10, 10, 8, 3, 3, {2, 0, 0, 1, 1}, true},            // asymmetric padding (VAE encoder downsample)
      {1, 6, 8, 9, 4, 5, 3, {1, 2, 1, 2, 1}, true},              // non-square kernel
      {1, 5, 4, 4, 3, 3, 3, {1, 0, 0, 0, 0}, false},             // no padding
      {1, 64, 32, 32, 64, 3, 3, Conv2dParams::same(1), true},    // larger, Winograd territory
  };
  uint32_t seed = 1;
  for (const auto& c : cases) {
    Tensor x = randn({c.N, c.C, c.H, c.W}, seed++);
    Tensor w = conv_weight(c.O, c.C, c.kh, c.kw, seed++);
    Tensor b = randn({c.O}, seed++);
    const Tensor* bp = c.bias ? &b : nullptr;
    Tensor want = ref::conv2d(x, w, bp, c.p);
    for (ConvAlgorithm a : {ConvAlgorithm::Auto, ConvAlgorithm::Direct, ConvAlgorithm::Winograd}) {
      Conv2dOptions o;
      o.algorithm = a;
      EXPECT_TRUE(close(conv2d(x, w, bp, c.p, o), want, 2e-5f, 2e-5f))
          << c.C << "->" << c.O << " " << c.H << "x" << c.W << " k" << c.kh << "x" << c.kw << " algo " << int(a);
    }
  }
}

TEST(Conv2d, HalfAndBfloatWeightsAndBias) {
  Tensor x = randn({1, 12, 6, 7}, 20);
  Tensor w = conv_weight(10, 12, 3, 3, 21);
  Tensor b = randn({10}, 22);
  for (DType t : {DType::F16, DType::BF16}) {
    Tensor wt = w.to(t), bt = b.to(t);
    EXPECT_TRUE(close(conv2d(x, wt, &bt, Conv2dParams::same(1)), ref::conv2d(x, wt, &bt, Conv2dParams::same(1)),
                      2e-5f, 2e-5f))
        << dtype_name(t);
  }
}

TEST(Conv2d, FusedResidual) {
  for (ConvAlgorithm a : {ConvAlgorithm::Direct, ConvAlgorithm::Winograd}) {
    Tensor x = randn({2, 32, 12, 12}, 30);
    Tensor w = conv_weight(32, 32, 3, 3, 31);
    Tensor b = randn({32}, 32);
    Tensor r = randn({2, 32, 12, 12}, 33);
    Conv2dOptions o;
    o.residual = &r;
    o.algorithm = a;
    Tensor want = ref::add(ref::conv2d(x, w, &b, Conv2dParams::same(1)), r);
    EXPECT_TRUE(close(conv2d(x, w, &b, Conv2dParams::same(1), o), want, 2e-5f, 2e-5f)) << int(a);
  }
}

// Winograd trades a little accuracy for speed; on SD-like data (silu activations, 1/sqrt(fan-in) weights) its
// error must stay far below 1e-4 of the output scale.
TEST(Conv2d, WinogradErrorIsSmallOnSdLikeData) {
  Tensor x = ref::silu(randn({1, 96, 24, 24}, 40));
  Tensor w = conv_weight(96, 96, 3, 3, 41);
  Tensor want = ref::conv2d(x, w, nullptr, Conv2dParams::same(1));
  Conv2dOptions o;
  o.algorithm = ConvAlgorithm::Winograd;
  EXPECT_LT(testing::rel_err(conv2d(x, w, nullptr, Conv2dParams::same(1), o), want), 1e-5);
}

TEST(Conv2d, SameBitsAtOneAndTwoThreads) {
  Tensor x = randn({2, 32, 20, 20}, 50);
  Tensor w = conv_weight(48, 32, 3, 3, 51);
  Tensor b = randn({48}, 52);
  for (ConvAlgorithm a : {ConvAlgorithm::Direct, ConvAlgorithm::Winograd}) {
    Conv2dOptions o;
    o.algorithm = a;
    EXPECT_TRUE(deterministic([&] { return conv2d(x, w, &b, Conv2dParams::same(1), o); })) << int(a);
    EXPECT_TRUE(deterministic([&] { return conv2d(x, w, &b, Conv2dParams::same(1, 2), o); })) << int(a);
  }
  // 64 channels at 40x40: oneDNN's F(4,3) kernel, which conv2d prefers to its F(2,3) from 32x32 outputs up.
  Tensor x64 = randn({2, 64, 40, 40}, 54);
  Tensor w64 = conv_weight(64, 64, 3, 3, 55);
  Conv2dOptions wino;
  wino.algorithm = ConvAlgorithm::Winograd;
  Tensor b64 = randn({64}, 56);
  EXPECT_TRUE(deterministic([&] { return conv2d(x64, w64, &b64, Conv2dParams::same(1), wino); }));
  EXPECT_TRUE(close(conv2d(x64, w64, &b64, Conv2dParams::same(1), wino),
                    ref::conv2d(x64, w64, &b64, Conv2dParams::same(1)), 1e-4f, 1e-4f));
  Tensor w1 = conv_weight(40, 32, 1, 1, 53);
  EXPECT_TRUE(deterministic([&] { return conv2d(x, w1, nullptr, {}); }));
}

TEST(Conv2d, DefaultAlgorithmIsASetting) {
  Tensor x = randn({1, 32, 8, 8}, 60);
  Tensor w = conv_weight(32, 32, 3, 3, 61);
  Tensor want = ref::conv2d(x, w, nullptr, Conv2dParams::same(1));
  set_default_conv_algorithm(ConvAlgorithm::Direct);
  Tensor direct = conv2d(x, w, nullptr, Conv2dParams::same(1));
  set_default_conv_algorithm(ConvAlgorithm::Auto);
  EXPECT_EQ(default_conv_algorithm(), ConvAlgorithm::Auto);
  EXPECT_TRUE(close(direct, want, 2e-5f, 2e-5f));
}

TEST(Conv2d, BadInputsThrow) {
  Tensor w = Tensor::zeros({4, 3, 3, 3});
  EXPECT_THROW(conv2d(Tensor::zeros({1, 2, 8, 8}), w, nullptr, {}), Error);      // channel mismatch
  EXPECT_THROW(conv2d(Tensor::zeros({1, 3, 2, 2}), w, nullptr, {}), Error);      // empty output
  EXPECT_THROW(conv2d(Tensor::zeros({3, 8, 8}), w, nullptr, {}), Error);         // rank
  EXPECT_THROW(conv2d(Tensor::zeros({1, 3, 8, 8}), w, nullptr, {0, 1, 1, 1, 1}), Error);  // stride
  Tensor b = Tensor::zeros({5});
  EXPECT_THROW(conv2d(Tensor::zeros({1, 3, 8, 8}), w, &b, {}), Error);          // bias size
  Tensor r = Tensor::zeros({1, 4, 8, 8});
  Conv2dOptions o;
  o.residual = &r;
  EXPECT_THROW(conv2d(Tensor::zeros({1, 3, 8, 8}), w, nullptr, {}, o), Error);  // residual shape (output is 6x6)
}

}  // namespace
}  // namespace pigment::ops
