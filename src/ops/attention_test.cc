#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "ops/attention_bf16.h"
#include "ops/ops_test_util.h"
#include "ops/precision.h"

namespace pigment::ops {
namespace {
using testing::deterministic;
using testing::randn;
using testing::rel_err;
using testing::same_bits;

struct AttnCase {
  int64_t B, Tq, Tk, heads, D;
};

// Exact (fp32) within 1e-5 of the double-precision reference. Fast: on AVX-512 BF16 the two products run in bf16
// (ops/attention_bf16.h), held to the reference within bf16 rounding; without AVX-512 BF16 (this suite also runs
// with PIGMENT_MAX_ISA=avx2) Fast is the fp32 kernel, bit for bit.
TEST(Attention, MatchesReference) {
  // Odd key counts (a bf16 value pair with a zero half), odd head sizes, the UNet's shapes (40 and 80 per head; 77
  // text tokens).
  const AttnCase cases[] = {{1, 1, 1, 1, 1},    {2, 77, 77, 2, 20},  {1, 130, 77, 8, 40}, {1, 65, 200, 1, 3},
                            {1, 100, 64, 2, 80}, {1, 70, 33, 1, 160}, {1, 512, 512, 2, 64}, {3, 5, 129, 3, 17},
                            // several query tiles and chunks, partial last ones; many key blocks
                            {1, 300, 300, 2, 40}, {1, 20, 1000, 1, 24}, {2, 600, 77, 8, 40}};
  // The bf16 kernel on every shape here, though attention() takes it only from bf16_attention::min_keys() keys on.
  const size_t min_keys = bf16_attention::set_min_keys(1);
  uint32_t seed = 1;
  for (const auto& c : cases) {
    const float scale = 1.f / std::sqrt(float(c.D));
    Tensor q = randn({c.B, c.Tq, c.heads * c.D}, seed++, 1.5f);
    Tensor k = randn({c.B, c.Tk, c.heads * c.D}, seed++, 1.5f);
    Tensor v = randn({c.B, c.Tk, c.heads * c.D}, seed++);
    const std::string what = std::to_string(c.Tq) + "x" + std::to_string(c.Tk) + " heads " +
                             std::to_string(c.heads) + " D " + std::to_string(c.D);
    const Tensor expected = ref::attention(q, k, v, int(c.heads), scale);
    Tensor exact, fast;
    {
      ScopedPrecision p(Precision::Fp32);
      exact = attention(q, k, v, int(c.heads), scale);
    }
    {
      ScopedPrecision p(Precision::Fast);
      fast = attention(q, k, v, int(c.heads), scale);
    }
    EXPECT_LT(rel_err(exact, expected), 1e-5) << what;
    if (bf16_attention::available() && fast_precision_available()) {
      // bf16 inputs (8 significant bits) with fp32 sums: errors of a few 2^-9 relative, far from fp32's 1e-6.
      EXPECT_LT(rel_err(fast, expected), 2e-2) << what;
      EXPECT_GT(rel_err(fast, expected), 1e-5) << what << ": not the bf16 kernel?";
    } else {
      EXPECT_TRUE(same_bits(fast, exact)) << what;
    }
    if (c.Tq == c.Tk) {
      EXPECT_LT(rel_err(attention_causal(q, k, v, int(c.heads), scale),
                        ref::attention_causal(q, k, v, int(c.heads), scale)),
                1e-5)
          << "causal " << c.Tq << " D " << c.D;
    }
  }
  bf16_attention::set_min_keys(min_keys);
}

TEST(Attention, SharpSoftmaxStaysStable) {
  // Large logits: the online softmax must rescale without overflow.
  Tensor q = randn({1, 40, 64}, 10, 30.f), k = randn({1, 300, 64}, 11, 30.f), v = randn({1, 300, 64}, 12);
  EXPECT_LT(rel_err(attention(q, k, v, 4, 0.125f), ref::attention(q, k, v, 4, 0.125f)), 1e-5);
}

TEST(Attention, VerySharpSoftmaxWeightsUnderflowToZero) {
  // Score gaps of hundreds: most weights fall below the float range (exactly 0, never subnormal).
  Tensor q = randn({1, 50, 32}, 13, 12.f), k = randn({1, 150, 32}, 14, 12.f), v = randn({1, 150, 32}, 15);
  EXPECT_LT(rel_err(attention(q, k, v, 1, 1.f), ref::attention(q, k, v, 1, 1.f)), 1e-5);
  EXPECT_LT(rel_err(attention_causal(q, k, v, 1, 1.f), ref::attention_causal(q, k, v, 1, 1.f)), 1e-5);
}

TEST(Attention, MaxJumpsInALaterKeyBlock) {
  // A few keys far above the others after the first blocks: their blocks must raise the running max and rescale.
  Tensor q = randn({1, 70, 48}, 16), k = randn({1, 400, 48}, 17), v = randn({1, 400, 48}, 18);
  for (int64_t key : {150, 260, 399})
    for (int64_t e = 0; e < 48; ++e) k.f32()[key * 48 + e] *= float(key);
  Tensor y = attention(q, k, v, 2, 0.2f);
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_TRUE(std::isfinite(y.f32()[i])) << i;  // rel_err skips NaNs
  EXPECT_LT(rel_err(y, ref::attention(q, k, v, 2, 0.2f)), 1e-5);
}

TEST(Attention, CausalWithMoreKeysThanQueries) {
  Tensor q = randn({1, 10, 16}, 20), k = randn({1, 77, 16}, 21), v = randn({1, 77, 16}, 22);
  EXPECT_LT(rel_err(attention_causal(q, k, v, 2, 0.25f), ref::attention_causal(q, k, v, 2, 0.25f)), 1e-5);
}

TEST(Attention, SameBitsAtOneAndTwoThreads) {
  Tensor q = randn({2, 300, 80}, 30), k = randn({2, 300, 80}, 31), v = randn({2, 300, 80}, 32);
  EXPECT_TRUE(deterministic([&] { return attention(q, k, v, 2, 0.15f); }));
  EXPECT_TRUE(deterministic([&] { return attention_causal(q, k, v, 2, 0.15f); }));
}

TEST(Attention, BadShapesThrow) {
  EXPECT_THROW(attention(Tensor::zeros({1, 4, 6}), Tensor::zeros({1, 4, 6}), Tensor::zeros({1, 5, 6}), 2, 1.f), Error);
  EXPECT_THROW(attention(Tensor::zeros({1, 4, 6}), Tensor::zeros({1, 4, 6}), Tensor::zeros({1, 4, 6}), 4, 1.f), Error);
  EXPECT_THROW(attention(Tensor::zeros({4, 6}), Tensor::zeros({4, 6}), Tensor::zeros({4, 6}), 1, 1.f), Error);
}

// With the fast path switched off (what a CPU without one computes), Fast attention is the fp32 kernel's bits.
TEST(AttentionBf16, WithoutTheFastPathFastIsFloat32) {
  const int64_t keys = int64_t(bf16_attention::min_keys());  // where the bf16 kernel would run
  Tensor q = randn({2, 130, 80}, 21), k = randn({2, keys, 80}, 22), v = randn({2, keys, 80}, 23);
  Tensor exact;
  {
    ScopedPrecision p(Precision::Fp32);
    exact = attention(q, k, v, 2, 0.15f);
  }
  ScopedPrecision p(Precision::Fast);
  const bool was = set_fast_path_enabled(false);
  const Tensor fast = attention(q, k, v, 2, 0.15f);
  set_fast_path_enabled(was);
  EXPECT_TRUE(same_bits(fast, exact));
}

// Under Fast the bf16 kernel runs only from bf16_attention::min_keys() keys on (below, the fp32 kernel is as fast or
// faster): fewer keys give the fp32 bits, that many do not.
TEST(AttentionBf16, OnlyFromMinKeysOn) {
  if (!bf16_attention::available() || !fast_precision_available()) GTEST_SKIP() << "no AVX-512 BF16 here";
  const int64_t n = int64_t(bf16_attention::kDefaultMinKeys);
  ASSERT_EQ(bf16_attention::min_keys(), size_t(n));
  for (int64_t keys : {n - 1, n}) {
    Tensor q = randn({1, 40, 80}, 30), k = randn({1, keys, 80}, 31), v = randn({1, keys, 80}, 32);
    Tensor exact, fast;
    {
      ScopedPrecision p(Precision::Fp32);
      exact = attention(q, k, v, 2, 0.15f);
    }
    {
      ScopedPrecision p(Precision::Fast);
      fast = attention(q, k, v, 2, 0.15f);
    }
    EXPECT_EQ(same_bits(fast, exact), keys < n) << keys << " keys";
  }
}

// Large logits: the online softmax rescales without overflow in the bf16 path too; causal attention stays fp32.
TEST(AttentionBf16, SharpSoftmaxAndCausal) {
  Tensor q = randn({1, 200, 64}, 7, 30.f), k = randn({1, 200, 64}, 8, 30.f), v = randn({1, 200, 64}, 9);
  ScopedPrecision p(Precision::Fast);
  const size_t min_keys = bf16_attention::set_min_keys(1);
  const Tensor y = attention(q, k, v, 2, 0.125f);
  bf16_attention::set_min_keys(min_keys);
  // Scores in the thousands: bf16 rounding of q and k moves them by whole units, so which key wins may differ from
  // the reference; what must hold is a finite convex combination of the values (weights rescaled, never inf/NaN).
  float vmax = 0;
  for (int64_t i = 0; i < v.numel(); ++i) vmax = std::max(vmax, std::fabs(v.f32()[i]));
  for (int64_t i = 0; i < y.numel(); ++i) {
    ASSERT_TRUE(std::isfinite(y.f32()[i])) << i;
    ASSERT_LE(std::fabs(y.f32()[i]), vmax * 1.01f) << i;
  }
  Tensor yc;
  {
    ScopedPrecision exact(Precision::Fp32);
    yc = attention_causal(q, k, v, 2, 0.125f);
  }
  EXPECT_TRUE(same_bits(attention_causal(q, k, v, 2, 0.125f), yc));
}

}  // namespace
}  // namespace pigment::ops
