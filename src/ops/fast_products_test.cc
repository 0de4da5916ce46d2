// Precision::Fast (bf16 products on AMX or AVX-512 BF16): the scalar reference on bf16-rounded inputs and weights
// within float32 accumulation error, close to the float32 path within bf16 rounding, fused bias/activation/residual,
// the same bits at 1 and 2 threads, and exactly the float32 path where the CPU has no fast path or it is forced off
// (which these tests also do on every machine).
#include "ops/fast_products.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "ops/backward.h"
#include "ops/onednn.h"
#include "ops/ops.h"
#include "ops/ops_test_util.h"
#include "ops/precision.h"

namespace pigment::ops {
namespace {
using testing::randn;
using testing::rel_err;
using testing::same_bits;

// bf16 keeps 8 significant bits: inputs and weights are each rounded by at most 2^-9 relative, so a dot product of
// random terms is off by about 2^-9 of its typical term times sqrt(K) — a few 1e-3 of the output scale.
constexpr double kBf16Tolerance = 1.5e-2;

TEST(FastPrecision, ParsesNames) {
  EXPECT_EQ(parse_precision("fp32"), Precision::Fp32);
  EXPECT_EQ(parse_precision("exact"), Precision::Fp32);
  EXPECT_STREQ(precision_name(Precision::Fp32), "exact");
  EXPECT_EQ(parse_precision("auto"), fast_precision_available() ? Precision::Fast : Precision::Fp32);
  {
    const bool was = set_fast_path_enabled(false);  // a CPU without bf16 arithmetic: auto is exact
    EXPECT_EQ(parse_precision("auto"), Precision::Fp32);
    ScopedPrecision fast(Precision::Fast);
    EXPECT_STREQ(precision_used(), "exact");  // Fast without a fast path computes as Fp32, and says so
    set_fast_path_enabled(was);
  }
  EXPECT_EQ(parse_precision("fast"), Precision::Fast);
  EXPECT_THROW(parse_precision("half"), Error);
  EXPECT_STREQ(precision_name(Precision::Fast), "fast");
  ScopedPrecision p(Precision::Fast);
  EXPECT_EQ(precision(), Precision::Fast);
}

TEST(FastPrecision, LinearIsCloseToFloat32WithFusedEpilogues) {
  const Tensor x = randn({2, 77, 320}, 1), w = randn({640, 320}, 2, 0.05f), b = randn({640}, 3);
  const Tensor r = randn({2, 77, 640}, 4);
  for (Activation act : {Activation::None, Activation::Gelu, Activation::Silu}) {
    for (bool res : {false, true}) {
      LinearOptions o;
      o.activation = act;
      o.residual = res ? &r : nullptr;
      const Tensor want = linear(x, w, &b, o);
      ScopedPrecision p(Precision::Fast);
      const Tensor got = linear(x, w, &b, o);
      if (fast_precision_available()) {
        EXPECT_LT(rel_err(got, want), kBf16Tolerance) << int(act) << " " << res;
        EXPECT_GT(rel_err(got, want), 0) << "the bf16 path did not run";
      } else {
        EXPECT_TRUE(same_bits(got, want));
      }
    }
  }
}

TEST(FastPrecision, HalfWeightsAreUsedAsTheyAre) {
  const Tensor x = randn({64, 96}, 5), w = randn({48, 96}, 6, 0.1f).to(DType::F16), b = randn({48}, 7).to(DType::F16);
  const Tensor want = linear(x, w, &b);
  ScopedPrecision p(Precision::Fast);
  EXPECT_LT(rel_err(linear(x, w, &b), want), kBf16Tolerance);
}

TEST(FastPrecision, ConvIsCloseToFloat32WithResidual) {
  const Tensor x = randn({2, 32, 20, 18}, 8), w = randn({48, 32, 3, 3}, 9, 0.06f), b = randn({48}, 10);
  const Tensor r = randn({2, 48, 20, 18}, 11);
  Conv2dOptions o;
  o.residual = &r;
  for (auto params : {Conv2dParams::same(1), Conv2dParams::same(1, 2), Conv2dParams{2, 0, 0, 1, 1}}) {
    Conv2dOptions oo = params.stride == 1 ? o : Conv2dOptions{};
    const Tensor want = conv2d(x, w, &b, params, oo);
    ScopedPrecision p(Precision::Fast);
    const Tensor got = conv2d(x, w, &b, params, oo);
    EXPECT_LT(rel_err(got, want), kBf16Tolerance) << params.stride;
    if (fast_precision_available()) {
      EXPECT_GT(rel_err(got, want), 0) << "the bf16 path did not run";
    }
  }
  const Tensor w1 = randn({16, 32, 1, 1}, 12, 0.2f);
  const Tensor want = conv2d(x, w1, nullptr, Conv2dParams{});
  ScopedPrecision p(Precision::Fast);
  EXPECT_LT(rel_err(conv2d(x, w1, nullptr, Conv2dParams{}), want), kBf16Tolerance);
}

// x with every element rounded to bf16 (round to nearest even, as the kernels' conversions), in float32.
Tensor bf16_rounded(const Tensor& x) { return x.to(DType::BF16).as_f32(); }

// What a bf16 kernel computes exactly: products of bf16-rounded inputs and weights (exact in float32), summed in
// float32. Against the scalar reference on those rounded values only the summation order differs: ~K·2^-24 of the
// terms' size at worst, a few 1e-7 of the output scale at these sizes, far below bf16's own error (a few 1e-3, which
// kBf16Tolerance bounds).
constexpr double kAccumulationTolerance = 2e-5;

// Where the CPU (or $PIGMENT_MAX_ISA) has no fast path, `got` must be the float32 path's result instead.
void expect_bf16_kernel(const Tensor& got, const Tensor& rounded_ref, const Tensor& exact_ref, const Tensor& fp32,
                        const std::string& what) {
  if (!fast_precision_available()) {
    EXPECT_TRUE(same_bits(got, fp32)) << what << ": no fast path, so the float32 path";
    return;
  }
  EXPECT_LT(rel_err(got, rounded_ref), kAccumulationTolerance) << what;
  EXPECT_GT(rel_err(got, exact_ref), 10 * kAccumulationTolerance) << what << ": no bf16 rounding, no bf16 kernel";
}

TEST(FastPrecision, LinearHoldsToTheReferenceOnBf16RoundedValues) {
  const Tensor x = randn({300, 320}, 21), w = randn({640, 320}, 22, 0.05f).to(DType::F16), b = randn({640}, 23);
  const Tensor fp32 = linear(x, w, &b);
  ScopedPrecision p(Precision::Fast);
  expect_bf16_kernel(linear(x, w, &b), ref::linear(bf16_rounded(x), bf16_rounded(w.as_f32()), &b),
                     ref::linear(x, w.as_f32(), &b), fp32, "linear");
}

TEST(FastPrecision, ConvHoldsToTheReferenceOnBf16RoundedValues) {
  const Tensor x = randn({2, 64, 12, 10}, 24), w3 = randn({96, 64, 3, 3}, 25, 0.04f), b = randn({96}, 26);
  const Tensor w1 = randn({96, 64, 1, 1}, 27, 0.1f);
  for (auto params : {Conv2dParams::same(1), Conv2dParams::same(1, 2), Conv2dParams{}}) {
    const Tensor& w = params.pad_top ? w3 : w1;
    const Tensor fp32 = conv2d(x, w, &b, params);
    ScopedPrecision p(Precision::Fast);
    expect_bf16_kernel(conv2d(x, w, &b, params), ref::conv2d(bf16_rounded(x), bf16_rounded(w), &b, params),
                       ref::conv2d(x, w, &b, params), fp32,
                       "conv " + std::to_string(w.dim(2)) + "x" + std::to_string(w.dim(3)) + " stride " +
                           std::to_string(params.stride));
  }
}

// The fallback, on any machine: with the fast path forced off, Fast gives the float32 path's bits.
TEST(FastPrecision, ForcedOffComputesAsFloat32) {
  const Tensor x = randn({2, 77, 320}, 28), w = randn({640, 320}, 29, 0.05f), b = randn({640}, 30);
  const Tensor xc = randn({2, 32, 20, 18}, 31), wc = randn({48, 32, 3, 3}, 32, 0.06f), bc = randn({48}, 33);
  const Tensor want_l = linear(x, w, &b), want_c = conv2d(xc, wc, &bc, Conv2dParams::same(1));
  const bool was = set_fast_path_enabled(false);
  EXPECT_EQ(fast_path(), FastPath::None);
  EXPECT_FALSE(fast_precision_available());
  Tensor got_l, got_c;
  {
    ScopedPrecision p(Precision::Fast);
    got_l = linear(x, w, &b);
    got_c = conv2d(xc, wc, &bc, Conv2dParams::same(1));
  }
  set_fast_path_enabled(was);
  EXPECT_TRUE(same_bits(got_l, want_l));
  EXPECT_TRUE(same_bits(got_c, want_c));
}

// Which convolutions the fast path takes (fast_products.cc): everything on AMX; on AVX-512 BF16 not the shapes where
// the float32 Winograd kernel is faster (at most 320 channels, from 64x64 outputs up) nor inputs of < 16 channels
// nor outputs of <= 4;
// nothing without a fast path or outside Precision::Fast.
TEST(FastPrecision, ConvolutionsTakenFollowTheFastPath) {
  auto takes = [](int64_t c, int64_t o, int64_t px, bool wino) { return fast::takes_conv(c, o, px, wino); };
  EXPECT_FALSE(takes(640, 640, 32 * 32, true)) << "Precision::Fp32 takes nothing";
  ScopedPrecision p(Precision::Fast);
  const FastPath path = fast_path();
  const bool any = path != FastPath::None, amx = path == FastPath::Amx;
  EXPECT_EQ(takes(640, 640, 32 * 32, true), any);
  EXPECT_EQ(takes(1280, 1280, 8 * 8, false), any);
  EXPECT_EQ(takes(512, 512, 64 * 64, true), any);
  EXPECT_EQ(takes(320, 320, 64 * 64, false), any) << "direct by choice: the bf16 kernel is faster";
  EXPECT_EQ(takes(320, 320, 64 * 64, true), amx);
  EXPECT_EQ(takes(128, 128, 512 * 512, true), amx);
  EXPECT_EQ(takes(4, 320, 64 * 64, false), amx);
  EXPECT_EQ(takes(128, 3, 64 * 64, false), amx);
  const bool was = set_fast_path_enabled(false);
  EXPECT_FALSE(takes(640, 640, 32 * 32, true));
  set_fast_path_enabled(was);
}

TEST(FastPrecision, SameBitsAtOneAndTwoThreads) {
  ScopedPrecision p(Precision::Fast);
  const Tensor x = randn({2, 320, 32, 32}, 13), w = randn({320, 320, 3, 3}, 14, 0.02f), b = randn({320}, 15);
  EXPECT_TRUE(testing::deterministic([&] { return conv2d(x, w, &b, Conv2dParams::same(1)); }));
  const Tensor s = randn({2, 1024, 320}, 16), wl = randn({1280, 320}, 17, 0.05f);
  EXPECT_TRUE(testing::deterministic([&] { return linear(s, wl, nullptr); }));
}


// ---- the bf16 copies of the weights: kept within a budget or converted per call, the same bits ----

// w with an owner (as a model's weights are): the caches key on it.
Tensor owned(const Tensor& t) {
  auto keep = std::make_shared<Tensor>(t.clone());
  return Tensor::view(std::shared_ptr<const void>(keep, keep->raw()), keep->raw(), keep->shape(), keep->dtype());
}

// Restores the bf16 weights' settings a test changes.
struct Bf16Settings {
  size_t budget = fast::bf16_weight_budget();
  bool keep = fast::set_keep_bf16_weights(true);
  ~Bf16Settings() {
    fast::set_keep_bf16_weights(false);  // drops what the test kept
    fast::set_keep_bf16_weights(keep);
    fast::set_bf16_weight_budget(budget);
  }
};

// The one-pass conversion into the bf16 kernels' layouts (VNNI pairs of 16-row groups through AVX-512, the rest
// scalar) gives oneDNN's reorder's bits from float32, for f32, f16 and bf16 sources, odd sizes (padded layouts)
// included, with the AVX-512 loops and with the portable ones.
TEST(FastBf16Weights, OnePassConversionMatchesOneDnnReorder) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  struct Case {
    Shape shape;  // the weight as stored: [N, K] for a linear, [O, C, kh, kw] for a convolution
    tag want;
  };
  const std::vector<Case> cases = {
      {{640, 320}, tag::BA16a64b2a}, {{96, 48}, tag::BA16a32b2a}, {{70, 38}, tag::BA16a64b2a},
      {{48, 32, 3, 3}, tag::ABcd16b16a2b}, {{48, 32, 3, 3}, tag::AcdB16b16a2b}, {{40, 30, 3, 3}, tag::ABcd16b16a2b},
      {{64, 32, 1, 1}, tag::ABcd16b16a2b}, {{32, 250, 3, 3}, tag::ABcd16b16a2b}, {{64, 2500}, tag::BA16a64b2a}, {{48, 32, 3, 3}, tag::aBcd16b}, {{48, 32, 3, 3}, tag::ABcd16a16b2a}};
  const bool was = onednn::set_simd_weight_prep(true);
  for (const Case& c : cases)
    for (DType src : {DType::F32, DType::F16, DType::BF16}) {
      const Tensor w = randn(c.shape, 40, 0.3f).to(src);
      const bool conv = c.shape.size() == 4;
      dnnl::memory::dims dims = conv ? dnnl::memory::dims{c.shape[0], c.shape[1], c.shape[2], c.shape[3]}
                                     : dnnl::memory::dims{c.shape[1], c.shape[0]};
      const dnnl::memory::desc plain(dims, dt::f32, conv ? tag::oihw : tag::ba), want(dims, dt::bf16, c.want);
      const Tensor wf = w.as_f32();
      dnnl::memory from(plain, onednn::engine(), const_cast<void*>(wf.raw())), expect(want, onednn::engine());
      dnnl::reorder(from, expect).execute(onednn::stream(), from, expect);
      onednn::stream().wait();
      const std::string what = std::to_string(int(c.want)) + " from " + std::to_string(int(src)) + " " +
                               std::to_string(c.shape[0]) + "x" + std::to_string(c.shape[1]);
      for (bool simd : {true, false}) {
        onednn::set_simd_weight_prep(simd);
        std::vector<uint16_t> got(want.get_size() / 2, 0xffff);
        ASSERT_TRUE(onednn::convert_to_blocked_bf16(w, plain, want, got.data())) << what;
        EXPECT_EQ(std::memcmp(got.data(), expect.get_data_handle(), want.get_size()), 0) << what << " simd " << simd;
      }
    }
  onednn::set_simd_weight_prep(was);
}

// Kept or converted per call (budget too small to keep anything, or keeping off), the products give the same bits;
// with room, weights are kept from their second use, and the bytes kept never pass the budget.
TEST(FastBf16Weights, KeptAndPerCallGiveTheSameBits) {
  if (!fast_precision_available()) GTEST_SKIP() << "no fast path on this CPU";
  ScopedPrecision p(Precision::Fast);
  Bf16Settings restore;
  const Tensor x = randn({2, 64, 12, 10}, 41), w3 = owned(randn({96, 64, 3, 3}, 42, 0.04f).to(DType::F16));
  const Tensor w1 = owned(randn({96, 64, 1, 1}, 43, 0.1f)), xl = randn({50, 320}, 44);
  const Tensor wl = owned(randn({640, 320}, 45, 0.05f).to(DType::F16));
  const Tensor dy = randn({2, 96, 12, 10}, 46);
  auto run = [&] {  // the backward-data convolution's layout pairs output channels: rounded, then oneDNN permutes
    return std::vector<Tensor>{conv2d(x, w3, nullptr, Conv2dParams::same(1)), conv2d(x, w1, nullptr, Conv2dParams{}),
                               linear(xl, wl, nullptr), conv2d_backward_input(dy, w3, x.shape(), Conv2dParams::same(1))};
  };
  fast::set_keep_bf16_weights(false);
  const std::vector<Tensor> fresh = run();
  fast::set_keep_bf16_weights(true);
  fast::set_bf16_weight_budget(1);
  for (int i = 0; i < 3; ++i) {
    const std::vector<Tensor> got = run();
    for (size_t k = 0; k < got.size(); ++k) EXPECT_TRUE(same_bits(got[k], fresh[k])) << "per call " << k;
  }
  EXPECT_EQ(fast::kept_bf16_weights(), 0u);
  EXPECT_EQ(fast::kept_bf16_bytes(), 0u);
  fast::set_bf16_weight_budget(size_t(64) << 20);
  fast::new_weight_phase();
  (void)run();
  EXPECT_EQ(fast::kept_bf16_weights(), 0u) << "kept from the second use on";
  for (int i = 0; i < 2; ++i) {
    const std::vector<Tensor> got = run();
    for (size_t k = 0; k < got.size(); ++k) EXPECT_TRUE(same_bits(got[k], fresh[k])) << "kept " << k;
  }
  EXPECT_EQ(fast::kept_bf16_weights(), 4u);
  EXPECT_EQ(fast::kept_bf16_bytes(), size_t(2 * 96 * 64 * 9 + 96 * 64 + 640 * 320) * 2);
}

// The pipeline fits the budget to the image size only while nobody chose one: clamped to [1 byte, 2 GiB]; a budget set
// by the caller (the trainer, --low-memory, a test) or $PIGMENT_BF16_CACHE_MB stays.
TEST(FastBf16Weights, AFittedBudgetGivesWayToAChosenOne) {
  Bf16Settings restore;
  fast::reset_bf16_weight_budget();
  if (std::getenv("PIGMENT_BF16_CACHE_MB")) {
    EXPECT_FALSE(fast::fit_bf16_weight_budget(size_t(1) << 30));
  } else {
    EXPECT_TRUE(fast::fit_bf16_weight_budget(size_t(1) << 30));
    EXPECT_EQ(fast::bf16_weight_budget(), size_t(1) << 30);
    EXPECT_TRUE(fast::fit_bf16_weight_budget(size_t(100) << 30));
    EXPECT_EQ(fast::bf16_weight_budget(), size_t(2048) << 20) << "never above the default";
    EXPECT_TRUE(fast::fit_bf16_weight_budget(0));
    EXPECT_EQ(fast::bf16_weight_budget(), 1u) << "zero means nothing kept";
  }
  fast::set_bf16_weight_budget(size_t(64) << 20);
  EXPECT_FALSE(fast::fit_bf16_weight_budget(size_t(1) << 30));
  EXPECT_EQ(fast::bf16_weight_budget(), size_t(64) << 20);
}

// A budget for one of two weights that are used in turn: the first one kept stays, the other is converted per call
// every time (no thrashing), the budget holds; in a later phase, a weight reused more displaces one that the phase
// has not used, but not the reverse.
TEST(FastBf16Weights, BudgetKeepsAFixedSubsetAndPhasesDecideWhatMakesWay) {
  if (!fast_precision_available()) GTEST_SKIP() << "no fast path on this CPU";
  ScopedPrecision p(Precision::Fast);
  Bf16Settings restore;
  fast::set_keep_bf16_weights(false);
  fast::set_keep_bf16_weights(true);
  const Tensor xa = randn({40, 512}, 50), a = owned(randn({512, 512}, 51, 0.05f).to(DType::F16));
  const Tensor b = owned(randn({512, 512}, 52, 0.05f).to(DType::F16));
  const size_t one = size_t(512) * 512 * 2;
  fast::set_bf16_weight_budget(one + one / 2);
  fast::new_weight_phase();
  const Tensor want_a = linear(xa, a, nullptr), want_b = linear(xa, b, nullptr);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(same_bits(linear(xa, a, nullptr), want_a));
    EXPECT_TRUE(same_bits(linear(xa, b, nullptr), want_b));
    EXPECT_EQ(fast::kept_bf16_weights(), 1u);
    EXPECT_LE(fast::kept_bf16_bytes(), fast::bf16_weight_budget());
  }
  // Phase 2 uses only b, five times: a (reused at most 5 times in a phase, as b now) stays; b goes per call.
  fast::new_weight_phase();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(same_bits(linear(xa, b, nullptr), want_b));
  EXPECT_EQ(fast::kept_bf16_bytes(), one) << "a stays: b is not reused more than a was";
  // Phase 3: b six times: more than a's best, and a is not in use in this phase: a makes way.
  fast::new_weight_phase();
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(same_bits(linear(xa, b, nullptr), want_b));
  EXPECT_EQ(fast::kept_bf16_weights(), 1u);
  EXPECT_EQ(fast::kept_bf16_bytes(), one);
  // Phase 4: a twice: b (best 6) is not displaced.
  fast::new_weight_phase();
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(same_bits(linear(xa, a, nullptr), want_a));
  EXPECT_EQ(fast::kept_bf16_bytes(), one);
  // A weight changed in place and forgotten is converted afresh, whether it was kept or not.
  fast::set_bf16_weight_budget(size_t(64) << 20);
  Tensor c = owned(randn({512, 512}, 53, 0.05f));
  for (int i = 0; i < 3; ++i) (void)linear(xa, c, nullptr);
  EXPECT_EQ(fast::kept_bf16_bytes(), 2 * one) << "b and c kept";
  c.f32()[3] += 1.f;
  forget_prepared(c);
  EXPECT_TRUE(same_bits(linear(xa, c, nullptr), linear(xa, c.clone(), nullptr)));
}

}  // namespace
}  // namespace pigment::ops
