#include <gtest/gtest.h>

#include "ops/ops_test_util.h"

namespace pigment::ops {
namespace {
using testing::close;
using testing::deterministic;
using testing::randn;

TEST(GroupNorm, MatchesReference) {
  struct Case {
    Shape x;
    int groups;
    float mean;
  };
  const Case cases[] = {{{1, 1, 1, 1}, 1, 0.f},      {{2, 6, 7, 5}, 3, 0.f},    {{1, 32, 16, 16}, 8, 0.f},
                        {{2, 320, 9, 9}, 32, 0.f},    {{1, 4, 33}, 2, 0.f},      {{1, 3, 100, 100}, 1, 0.f},
                        {{1, 8, 13, 11}, 4, 100.f},  // large mean: statistics must not cancel
                        {{1, 64, 40, 40}, 32, 0.f},
                        // statistics combined from several 8192-element chunks, the last one partial, large mean
                        {{1, 2, 100, 100}, 1, 100.f}, {{2, 4, 128, 128}, 2, -50.f}};
  uint32_t seed = 1;
  for (const auto& c : cases) {
    Tensor x = randn(c.x, seed++, 1.f, c.mean);
    Tensor g = randn({c.x[1]}, seed++), b = randn({c.x[1]}, seed++);
    EXPECT_TRUE(close(group_norm(x, c.groups, g, b, 1e-5f), ref::group_norm(x, c.groups, g, b, 1e-5f), 1e-5f, 1e-5f))
        << shape_str(c.x);
    EXPECT_TRUE(close(group_norm_silu(x, c.groups, g, b, 1e-6f), ref::group_norm_silu(x, c.groups, g, b, 1e-6f),
                      1e-5f, 1e-5f))
        << shape_str(c.x);
  }
}

TEST(GroupNorm, SiluVariantIsSiluOfGroupNorm) {
  Tensor x = randn({2, 8, 5, 5}, 10);
  Tensor g = randn({8}, 11), b = randn({8}, 12);
  EXPECT_TRUE(close(group_norm_silu(x, 4, g, b, 1e-5f), ref::silu(ref::group_norm(x, 4, g, b, 1e-5f)), 1e-6f, 1e-6f));
}

TEST(GroupNorm, HalfGammaBeta) {
  Tensor x = randn({1, 6, 4, 4}, 20);
  Tensor g = randn({6}, 21).to(DType::F16), b = randn({6}, 22).to(DType::BF16);
  EXPECT_TRUE(close(group_norm(x, 2, g, b, 1e-5f), ref::group_norm(x, 2, g, b, 1e-5f), 1e-5f, 1e-5f));
}

TEST(GroupNorm, BadInputsThrow) {
  Tensor g = Tensor::zeros({6}), b = Tensor::zeros({6});
  EXPECT_THROW(group_norm(Tensor::zeros({1, 6, 2, 2}), 4, g, b, 1e-5f), Error);
  EXPECT_THROW(group_norm(Tensor::zeros({1, 6, 2, 2}), 0, g, b, 1e-5f), Error);
  EXPECT_THROW(group_norm(Tensor::zeros({1, 5, 2, 2}), 5, g, b, 1e-5f), Error);
  EXPECT_THROW(group_norm(Tensor::zeros({6}), 1, g, b, 1e-5f), Error);
}

TEST(LayerNorm, MatchesReference) {
  uint32_t seed = 30;
  for (Shape s : {Shape{1}, Shape{3, 7}, Shape{2, 77, 768}, Shape{5, 33}, Shape{4096, 40}}) {
    Tensor x = randn(s, seed++, 2.f, 0.5f);
    Tensor g = randn({s.back()}, seed++), b = randn({s.back()}, seed++);
    EXPECT_TRUE(close(layer_norm(x, g, b, 1e-5f), ref::layer_norm(x, g, b, 1e-5f), 1e-5f, 1e-5f)) << shape_str(s);
  }
  EXPECT_THROW(layer_norm(Tensor::zeros({2, 4}), Tensor::zeros({3}), Tensor::zeros({4}), 1e-5f), Error);
}

TEST(Softmax, MatchesReference) {
  uint32_t seed = 40;
  for (Shape s : {Shape{1}, Shape{3, 5}, Shape{2, 77}, Shape{8, 4096}, Shape{7, 33}}) {
    Tensor x = randn(s, seed++, 5.f);
    EXPECT_TRUE(close(softmax(x), ref::softmax(x), 1e-7f, 1e-5f)) << shape_str(s);
  }
  // Masked entries (-inf) get exactly zero; huge logits do not overflow.
  Tensor m = Tensor::from_vector({2, 4}, {0.f, -INFINITY, 1.f, -INFINITY, 1000.f, 999.f, -1000.f, 0.f});
  Tensor y = softmax(m);
  EXPECT_EQ(y.f32()[1], 0.f);
  EXPECT_EQ(y.f32()[3], 0.f);
  EXPECT_TRUE(close(y, ref::softmax(m), 1e-7f, 1e-6f));
}

TEST(Norms, SameBitsAtOneAndTwoThreads) {
  Tensor x = randn({2, 64, 32, 32}, 50);
  Tensor g = randn({64}, 51), b = randn({64}, 52);
  EXPECT_TRUE(deterministic([&] { return group_norm(x, 32, g, b, 1e-5f); }));
  EXPECT_TRUE(deterministic([&] { return group_norm_silu(x, 1, g, b, 1e-5f); }));
  Tensor s = x.reshape({-1, 64});
  EXPECT_TRUE(deterministic([&] { return layer_norm(s, g, b, 1e-5f); }));
  EXPECT_TRUE(deterministic([&] { return softmax(s); }));
}

}  // namespace
}  // namespace pigment::ops
