#include <gtest/gtest.h>

#include "ops/onednn.h"
#include "ops/ops_test_util.h"

namespace pigment::ops {
namespace {
using testing::close;
using testing::deterministic;
using testing::randn;

struct LinearCase {
  Shape x;
  int64_t out;
  bool bias;
};

TEST(Linear, MatchesReferenceOnOddShapes) {
  const LinearCase cases[] = {{{1, 1}, 1, true},      {{7, 13}, 5, false},   {{2, 3, 17}, 33, true},
                              {{1, 1280}, 1280, true}, {{77, 768}, 320, true}, {{257, 320}, 320, false},
                              {{2, 5, 64}, 2560, true}, {{300, 31}, 17, true}};
  uint32_t seed = 1;
  for (const auto& c : cases) {
    const int64_t in = c.x.back();
    Tensor x = randn(c.x, seed++);
    Tensor w = randn({c.out, in}, seed++, 1.f / std::sqrt(float(in)));
    Tensor b = randn({c.out}, seed++);
    Tensor got = linear(x, w, c.bias ? &b : nullptr);
    Tensor want = ref::linear(x, w, c.bias ? &b : nullptr);
    EXPECT_TRUE(close(got, want, 1e-5f, 1e-5f)) << shape_str(c.x) << " x " << c.out;
  }
}

TEST(Linear, HalfAndBfloatWeights) {
  Tensor x = randn({19, 40}, 11);
  Tensor w = randn({24, 40}, 12, 0.2f);
  Tensor b = randn({24}, 13);
  for (DType t : {DType::F16, DType::BF16}) {
    Tensor wt = w.to(t), bt = b.to(t);
    EXPECT_TRUE(close(linear(x, wt, &bt), ref::linear(x, wt, &bt), 1e-5f, 1e-5f)) << dtype_name(t);
  }
}

TEST(Linear, FusedActivationAndResidual) {
  Tensor x = randn({2, 9, 48}, 21);
  Tensor w = randn({40, 48}, 22, 0.15f);
  Tensor b = randn({40}, 23);
  Tensor r = randn({2, 9, 40}, 24);
  for (Activation a : {Activation::None, Activation::Silu, Activation::Gelu, Activation::GeluTanh,
                       Activation::QuickGelu}) {
    LinearOptions o;
    o.activation = a;
    o.residual = &r;
    Tensor want = ref::add(ref::activation(ref::linear(x, w, &b), a), r);
    EXPECT_TRUE(close(linear(x, w, &b, o), want, 2e-5f, 2e-5f)) << int(a);
    o.residual = nullptr;
    EXPECT_TRUE(close(linear(x, w, nullptr, o), ref::activation(ref::linear(x, w), a), 2e-5f, 2e-5f)) << int(a);
  }
}

TEST(Linear, DegenerateShapes) {
  Tensor w = Tensor::zeros({3, 0});
  Tensor b = Tensor::from_vector({3}, {1, 2, 3});
  Tensor y = linear(Tensor::zeros({2, 0}), w, &b);
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(y.to_vector(), (std::vector<float>{1, 2, 3, 1, 2, 3}));
  EXPECT_EQ(linear(Tensor::zeros({0, 4}), Tensor::zeros({3, 4})).shape(), (Shape{0, 3}));
}

TEST(Linear, BadShapesThrow) {
  EXPECT_THROW(linear(Tensor::zeros({2, 4}), Tensor::zeros({3, 5})), Error);
  EXPECT_THROW(linear(Tensor::zeros({2, 4}), Tensor::zeros({12})), Error);
  Tensor b = Tensor::zeros({4});
  EXPECT_THROW(linear(Tensor::zeros({2, 4}), Tensor::zeros({3, 4}), &b), Error);
  LinearOptions o;
  Tensor r = Tensor::zeros({2, 4});
  o.residual = &r;
  EXPECT_THROW(linear(Tensor::zeros({2, 4}), Tensor::zeros({3, 4}), nullptr, o), Error);
}

TEST(Linear, SameBitsAtOneAndTwoThreads) {
  for (Shape xs : {Shape{1, 1280}, Shape{4096, 64}, Shape{77, 768}, Shape{3, 2048}}) {
    Tensor x = randn(xs, 31);
    Tensor w = randn({xs[1] == 64 ? 320 : 1280, xs[1]}, 32, 0.03f);
    EXPECT_TRUE(deterministic([&] { return linear(x, w); })) << shape_str(xs);
  }
}

TEST(Matmul, MatchesReferenceWithTransposesAndBatches) {
  uint32_t seed = 40;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int batch : {0, 1, 3})
        for (bool shared_b : {false, true}) {
          if (batch == 0 && !shared_b) continue;
          const int64_t M = 13, K = 37, N = 21;
          Shape as = ta ? Shape{K, M} : Shape{M, K};
          if (batch) as.insert(as.begin(), batch);
          Shape bs = tb ? Shape{N, K} : Shape{K, N};
          if (!shared_b) bs.insert(bs.begin(), batch);
          Tensor a = randn(as, seed++), b = randn(bs, seed++);
          EXPECT_TRUE(close(matmul(a, b, ta, tb), ref::matmul(a, b, ta, tb), 1e-5f, 1e-5f))
              << "ta " << ta << " tb " << tb << " batch " << batch << " shared " << shared_b;
        }
}

TEST(Matmul, SameBitsAtOneAndTwoThreads) {
  Tensor a = randn({8, 77, 40}, 50), b = randn({8, 77, 40}, 51);
  EXPECT_TRUE(deterministic([&] { return matmul(a, b, false, true); }));
  Tensor c = randn({2, 1024}, 52), d = randn({1024, 16}, 53);
  EXPECT_TRUE(deterministic([&] { return matmul(c, d); }));
}

TEST(Matmul, BadShapesThrow) {
  EXPECT_THROW(matmul(Tensor::zeros({2, 3}), Tensor::zeros({4, 2})), Error);
  EXPECT_THROW(matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 2})), Error);
  EXPECT_THROW(matmul(Tensor::zeros({3}), Tensor::zeros({3, 2})), Error);
}

TEST(WeightCache, PreparesOnceAndForgetsFreedWeights) {
  WeightCache cache;
  LinearOptions o;
  o.cache = &cache;
  Tensor x = randn({5, 32}, 60);
  {
    Tensor w = randn({16, 32}, 61).to(DType::F16);
    Tensor y1 = linear(x, w, nullptr, o);
    EXPECT_EQ(cache.entries(), 1u);
    EXPECT_GT(cache.bytes(), 0u);
    Tensor y2 = linear(x, w, nullptr, o);
    EXPECT_EQ(cache.entries(), 1u);
    EXPECT_TRUE(testing::same_bits(y1, y2));
  }
  // The weight is gone: a new weight (possibly at the same address) must not reuse its entry.
  for (int i = 0; i < 4; ++i) {
    Tensor w = randn({16, 32}, 70 + i).to(DType::F16);
    EXPECT_TRUE(close(linear(x, w, nullptr, o), ref::linear(x, w), 1e-5f, 1e-5f));
  }
  EXPECT_LE(cache.entries(), 1u);
  cache.clear();
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(WeightCache, NoticesWeightsRewrittenInPlace) {
  WeightCache cache;
  LinearOptions o;
  o.cache = &cache;
  Tensor x = randn({3, 8}, 80);
  Tensor w = randn({4, 8}, 81);
  linear(x, w, nullptr, o);
  for (int64_t i = 0; i < w.numel(); ++i) w.f32()[i] *= 2.f;  // an optimizer step would do this
  EXPECT_TRUE(close(linear(x, w, nullptr, o), ref::linear(x, w), 1e-5f, 1e-5f));
  cache.forget(w);
  EXPECT_EQ(cache.entries(), 0u);
}

TEST(WeightCache, EvictsBeyondItsBudget) {
  WeightCache cache(1);  // one byte: every new weight evicts the previous one
  LinearOptions o;
  o.cache = &cache;
  Tensor x = randn({2, 64}, 90);
  std::vector<Tensor> ws;
  for (int i = 0; i < 3; ++i) {
    ws.push_back(randn({64, 64}, 91 + i));
    EXPECT_TRUE(close(linear(x, ws.back(), nullptr, o), ref::linear(x, ws.back()), 1e-5f, 1e-5f));
    EXPECT_LE(cache.entries(), 1u);
  }
  cache.set_budget(size_t(1) << 30);
  for (const Tensor& w : ws) linear(x, w, nullptr, o);
  EXPECT_EQ(cache.entries(), 3u);
}

TEST(WeightCache, ViewsWithoutOwnerAreNotCached) {
  WeightCache cache;
  LinearOptions o;
  o.cache = &cache;
  std::vector<float> data(6 * 4, 0.5f);
  Tensor w = Tensor::view(nullptr, data.data(), {6, 4}, DType::F32);
  Tensor x = randn({2, 4}, 95);
  EXPECT_TRUE(close(linear(x, w, nullptr, o), ref::linear(x, w), 1e-5f, 1e-5f));
  EXPECT_EQ(cache.entries(), 0u);
}

}  // namespace
}  // namespace pigment::ops
