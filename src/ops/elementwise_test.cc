#include <gtest/gtest.h>

#include "ops/ops_test_util.h"

namespace pigment::ops {
namespace {
using testing::close;
using testing::deterministic;
using testing::randn;
using testing::same_bits;

// Values over the whole useful range, including where exp over/underflows and erf saturates.
Tensor activation_inputs() {
  std::vector<float> v;
  for (float x = -120.f; x <= 120.f; x += 0.37f) v.push_back(x);
  for (float x = -6.f; x <= 6.f; x += 0.0013f) v.push_back(x);
  for (float x : {0.f, -0.f, 1e-30f, -1e-30f, 1e-6f, 0.999999f, 1.f, 1.000001f, 3.919f, 3.92f, 88.f, -88.f, 89.f})
    v.push_back(x);
  return Tensor::from_vector({int64_t(v.size())}, v);
}

TEST(Activations, MatchReference) {
  Tensor x = activation_inputs();
  EXPECT_TRUE(close(silu(x), ref::silu(x), 1e-6f, 1e-6f));
  EXPECT_TRUE(close(quick_gelu(x), ref::quick_gelu(x), 1e-6f, 1e-6f));
  EXPECT_TRUE(close(gelu(x), ref::gelu(x), 1e-6f, 1e-6f));
  EXPECT_TRUE(close(gelu_tanh(x), ref::gelu_tanh(x), 1e-6f, 1e-6f));
  for (int64_t n : {1, 5, 16, 17, 100003}) {  // tails and the parallel path
    Tensor y = randn({n}, uint32_t(n), 3.f);
    EXPECT_TRUE(close(gelu(y), ref::gelu(y), 1e-6f, 1e-6f)) << n;
    EXPECT_TRUE(close(silu(y), ref::silu(y), 1e-6f, 1e-6f)) << n;
  }
}

TEST(Activations, Geglu) {
  for (Shape s : {Shape{1, 2}, Shape{3, 34}, Shape{2, 7, 2560}, Shape{5, 18}}) {
    Tensor x = randn(s, 7, 2.f);
    EXPECT_TRUE(close(geglu(x), ref::geglu(x), 1e-6f, 1e-6f)) << shape_str(s);
  }
  EXPECT_THROW(geglu(Tensor::zeros({2, 3})), Error);
}

TEST(Arithmetic, BroadcastingMatchesReferenceBitForBit) {
  const std::pair<Shape, Shape> cases[] = {
      {{2, 3, 4, 5}, {2, 3, 4, 5}}, {{2, 320, 9, 9}, {2, 320, 1, 1}}, {{2, 320, 9, 9}, {1, 320, 1, 1}},
      {{4096, 320}, {320}},         {{7, 5}, {1}},                    {{1}, {3, 4}},
      {{3, 1}, {1, 4}},             {{2, 1, 4}, {3, 1}},              {{1, 1}, {1}},
      {{5, 1, 7}, {5, 6, 7}},       {{300, 300}, {300, 1}},           {{2, 3, 1, 5}, {3, 4, 1}}};
  uint32_t seed = 10;
  for (const auto& [as, bs] : cases) {
    Tensor a = randn(as, seed++), b = randn(bs, seed++);
    EXPECT_TRUE(same_bits(add(a, b), ref::add(a, b))) << shape_str(as) << " + " << shape_str(bs);
    EXPECT_TRUE(same_bits(sub(a, b), ref::sub(a, b))) << shape_str(as) << " - " << shape_str(bs);
    EXPECT_TRUE(same_bits(mul(a, b), ref::mul(a, b))) << shape_str(as) << " * " << shape_str(bs);
    EXPECT_TRUE(same_bits(sub(b, a), ref::sub(b, a))) << shape_str(bs) << " - " << shape_str(as);
  }
  EXPECT_THROW(add(Tensor::zeros({2, 3}), Tensor::zeros({4})), Error);
}

TEST(Arithmetic, ScaleAddScaledAddInplace) {
  Tensor a = randn({3, 100001}, 20), b = randn({3, 100001}, 21);
  EXPECT_TRUE(same_bits(scale(a, 0.18215f), ref::scale(a, 0.18215f)));
  EXPECT_TRUE(close(add_scaled(a, b, -7.5f), ref::add_scaled(a, b, -7.5f), 1e-6f, 1e-6f));
  Tensor c = a.clone(), d = a.clone();
  add_inplace(c, b);
  ref::add_inplace(d, b);
  EXPECT_TRUE(same_bits(c, d));
  Tensor h = b.to(DType::F16);
  add_inplace(c, h);
  ref::add_inplace(d, h);
  EXPECT_TRUE(same_bits(c, d));
  EXPECT_THROW(add_scaled(a, Tensor::zeros({3}), 1.f), Error);
  EXPECT_THROW(add_inplace(c, Tensor::zeros({3})), Error);
}

TEST(Elementwise, SameBitsAtOneAndTwoThreads) {
  Tensor a = randn({2, 320, 32, 32}, 30), b = randn({2, 320, 1, 1}, 31);
  EXPECT_TRUE(deterministic([&] { return add(a, b); }));
  EXPECT_TRUE(deterministic([&] { return gelu(a); }));
  EXPECT_TRUE(deterministic([&] { return geglu(a.reshape({-1, 640})); }));
  EXPECT_TRUE(deterministic([&] { return add_scaled(a, a, 0.5f); }));
}

}  // namespace
}  // namespace pigment::ops
