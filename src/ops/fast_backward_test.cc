// Precision::Fast in the backward products (ops/fast_backward.h, `pigment train --mixed-precision bf16`): each
// gradient holds to the scalar reference on bf16-rounded operands within float32 accumulation error (and differs
// from the unrounded one, so the bf16 kernel ran), gives the same bits at 1 and 2 threads, and is the float32 path's
// result bit for bit where the fast path is off. A weight changed in place and forgotten is never served stale from
// the bf16 weight copies.
#include "ops/fast_backward.h"

#include <gtest/gtest.h>

#include <string>

#include "ops/backward.h"
#include "ops/fast_products.h"
#include "ops/ops.h"
#include "ops/ops_test_util.h"
#include "ops/precision.h"

namespace pigment::ops {
namespace {
using testing::randn;
using testing::rel_err;
using testing::same_bits;

Tensor bf16_rounded(const Tensor& x) { return x.to(DType::BF16).as_f32(); }

// As fast_products_test: only the float32 summation order separates the kernel from the reference on rounded
// operands (the gradients here sum over up to a few thousand terms).
constexpr double kAccumulationTolerance = 5e-5;

void expect_bf16_kernel(const Tensor& got, const Tensor& rounded_ref, const Tensor& exact_ref, const Tensor& fp32,
                        const std::string& what) {
  if (!fast_precision_available()) {
    EXPECT_TRUE(same_bits(got, fp32)) << what << ": no fast path, so the float32 path";
    return;
  }
  EXPECT_LT(rel_err(got, rounded_ref), kAccumulationTolerance) << what;
  EXPECT_GT(rel_err(got, exact_ref), 10 * kAccumulationTolerance) << what << ": no bf16 rounding, no bf16 kernel";
  EXPECT_LT(rel_err(got, fp32), 2e-2) << what << ": far from the float32 path";
}

// The bf16 linear backward, taken by default with AMX only (fast_backward.h), forced on for a test.
struct ForcedBf16LinearBackward {
  ForcedBf16LinearBackward() { fast::force_bf16_linear_backward(true); }
  ~ForcedBf16LinearBackward() { fast::force_bf16_linear_backward(false); }
};

TEST(FastBackward, LinearGradientsHoldToTheReferenceOnBf16RoundedValues) {
  const Tensor x = randn({3, 100, 96}, 1), w = randn({160, 96}, 2, 0.1f).to(DType::F16), dy = randn({3, 100, 160}, 3);
  const Tensor dx32 = linear_backward_input(dy, w), dw32 = linear_backward_weight(dy, x);
  ScopedPrecision p(Precision::Fast);
  ForcedBf16LinearBackward forced;
  expect_bf16_kernel(linear_backward_input(dy, w), ref::linear_backward_input(bf16_rounded(dy), bf16_rounded(w.as_f32())),
                     ref::linear_backward_input(dy, w.as_f32()), dx32, "linear dx");
  expect_bf16_kernel(linear_backward_weight(dy, x), ref::linear_backward_weight(bf16_rounded(dy), bf16_rounded(x)),
                     ref::linear_backward_weight(dy, x), dw32, "linear dw");
}

TEST(FastBackward, ConvGradientsHoldToTheReferenceOnBf16RoundedValues) {
  const Tensor x = randn({2, 32, 12, 10}, 4), w3 = randn({48, 32, 3, 3}, 5, 0.05f), w1 = randn({48, 32, 1, 1}, 6, 0.1f);
  for (auto params : {Conv2dParams::same(1), Conv2dParams::same(1, 2), Conv2dParams{}}) {
    const Tensor& w = params.pad_top ? w3 : w1;
    const Tensor y = conv2d(x, w, nullptr, params);
    const Tensor dy = randn(y.shape(), 7);
    const std::string what = "conv " + std::to_string(w.dim(2)) + "x" + std::to_string(w.dim(3)) + " stride " +
                             std::to_string(params.stride);
    const Tensor dx32 = conv2d_backward_input(dy, w, x.shape(), params);
    const Tensor dw32 = conv2d_backward_weight(dy, x, w.shape(), params);
    ScopedPrecision p(Precision::Fast);
    expect_bf16_kernel(conv2d_backward_input(dy, w, x.shape(), params),
                       ref::conv2d_backward_input(bf16_rounded(dy), bf16_rounded(w), x.shape(), params),
                       ref::conv2d_backward_input(dy, w, x.shape(), params), dx32, what + " dx");
    expect_bf16_kernel(conv2d_backward_weight(dy, x, w.shape(), params),
                       ref::conv2d_backward_weight(bf16_rounded(dy), bf16_rounded(x), w.shape(), params),
                       ref::conv2d_backward_weight(dy, x, w.shape(), params), dw32, what + " dw");
  }
}

TEST(FastBackward, SameBitsAtOneAndTwoThreads) {
  ScopedPrecision p(Precision::Fast);
  const Tensor x = randn({2, 64, 32, 32}, 8), w = randn({64, 64, 3, 3}, 9, 0.04f);
  const Tensor dy = randn({2, 64, 32, 32}, 10);
  EXPECT_TRUE(testing::deterministic([&] { return conv2d_backward_input(dy, w, x.shape(), Conv2dParams::same(1)); }));
  EXPECT_TRUE(testing::deterministic([&] { return conv2d_backward_weight(dy, x, w.shape(), Conv2dParams::same(1)); }));
  const Tensor s = randn({2, 1024, 320}, 11), wl = randn({640, 320}, 12, 0.05f), g = randn({2, 1024, 640}, 13);
  ForcedBf16LinearBackward forced;
  EXPECT_TRUE(testing::deterministic([&] { return linear_backward_input(g, wl); }));
  EXPECT_TRUE(testing::deterministic([&] { return linear_backward_weight(g, s); }));
}

// Without AMX the linear layers' backward stays float32 under Fast (faster there): the float32 path's bits.
TEST(FastBackward, LinearBackwardIsFloat32WithoutAmx) {
  const Tensor x = randn({3, 100, 96}, 1), w = randn({160, 96}, 2, 0.1f), dy = randn({3, 100, 160}, 3);
  const Tensor dx32 = linear_backward_input(dy, w), dw32 = linear_backward_weight(dy, x);
  ScopedPrecision p(Precision::Fast);
  EXPECT_EQ(fast::linear_backward_in_bf16(), fast_path() == FastPath::Amx);
  if (fast_path() == FastPath::Amx) return;  // there the bf16 kernel is the default (the test above checks it)
  EXPECT_TRUE(same_bits(linear_backward_input(dy, w), dx32));
  EXPECT_TRUE(same_bits(linear_backward_weight(dy, x), dw32));
}

// On any machine: with the fast path forced off, Fast's backward is the float32 path bit for bit.
TEST(FastBackward, ForcedOffComputesAsFloat32) {
  const Tensor x = randn({2, 32, 12, 10}, 14), w = randn({48, 32, 3, 3}, 15, 0.05f), dy = randn({2, 48, 12, 10}, 16);
  const Tensor xl = randn({50, 96}, 17), wl = randn({64, 96}, 18, 0.1f), gl = randn({50, 64}, 19);
  const Tensor want[4] = {conv2d_backward_input(dy, w, x.shape(), Conv2dParams::same(1)),
                          conv2d_backward_weight(dy, x, w.shape(), Conv2dParams::same(1)),
                          linear_backward_input(gl, wl), linear_backward_weight(gl, xl)};
  const bool was = set_fast_path_enabled(false);
  Tensor got[4];
  {
    ScopedPrecision p(Precision::Fast);
    got[0] = conv2d_backward_input(dy, w, x.shape(), Conv2dParams::same(1));
    got[1] = conv2d_backward_weight(dy, x, w.shape(), Conv2dParams::same(1));
    got[2] = linear_backward_input(gl, wl);
    got[3] = linear_backward_weight(gl, xl);
  }
  set_fast_path_enabled(was);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(same_bits(got[i], want[i])) << i;
}

// A trained weight (owned memory, changed in place by the optimizer) is kept as bf16 by the forward and the
// backward-data convolution; once forgotten (what the trainer does after every step) the next call sees its new
// values: the result equals that of a fresh tensor holding them.
TEST(FastBackward, AWeightChangedInPlaceAndForgottenIsNotServedStale) {
  ScopedPrecision p(Precision::Fast);
  Tensor w = randn({48, 32, 3, 3}, 20, 0.05f), wl = randn({64, 96}, 21, 0.1f);
  const Tensor x = randn({1, 32, 12, 10}, 22), dy = randn({1, 48, 12, 10}, 23), xl = randn({40, 96}, 24);
  for (int i = 0; i < 2; ++i) {  // kept from their second use on
    (void)conv2d(x, w, nullptr, Conv2dParams::same(1));
    (void)conv2d_backward_input(dy, w, x.shape(), Conv2dParams::same(1));
    (void)linear(xl, wl, nullptr);
  }
  if (fast_precision_available()) {
    EXPECT_GT(fast::kept_bf16_weights(), 0u);
  }
  // Changed in place (same memory), in one element between the 64 that the caches' fingerprint samples: only
  // forgetting can tell the caches.
  for (Tensor* t : {&w, &wl}) t->f32()[1] += 0.5f;
  forget_prepared(w);
  forget_prepared(wl);
  const Tensor fresh_w = w.clone(), fresh_wl = wl.clone();
  EXPECT_TRUE(same_bits(conv2d(x, w, nullptr, Conv2dParams::same(1)), conv2d(x, fresh_w, nullptr, Conv2dParams::same(1))));
  EXPECT_TRUE(same_bits(conv2d_backward_input(dy, w, x.shape(), Conv2dParams::same(1)),
                        conv2d_backward_input(dy, fresh_w, x.shape(), Conv2dParams::same(1))));
  EXPECT_TRUE(same_bits(linear(xl, wl, nullptr), linear(xl, fresh_wl, nullptr)));
}

}  // namespace
}  // namespace pigment::ops
