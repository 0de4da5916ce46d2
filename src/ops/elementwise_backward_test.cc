#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "ops/backward.h"
#include "ops/grad_check_test_util.h"
#include "ops/ops_test_util.h"

namespace pigment::ops {
namespace {
using testing::close;
using testing::deterministic;
using testing::DVec;
using testing::from_double;
using testing::matches_finite_differences;
using testing::randn;
using testing::same_bits;
using testing::to_double;

// The forwards in double, written from their definitions (PyTorch's), independently of ops.
double silu_d(double x) { return x / (1 + std::exp(-x)); }
double gelu_d(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_d(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}
double quick_gelu_d(double x) { return x / (1 + std::exp(-1.702 * x)); }

template <typename F>
testing::DForward elementwise(F f) {
  return [f](const DVec& x) {
    DVec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = f(x[i]);
    return y;
  };
}

// x [..., 2N] → [..., N] = x[..., :N] · gelu(x[..., N:])
testing::DForward geglu_d(int64_t n) {
  return [n](const DVec& x) {
    const size_t rows = x.size() / size_t(2 * n);
    DVec y(rows * size_t(n));
    for (size_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < n; ++i) y[r * n + i] = x[r * 2 * n + i] * gelu_d(x[r * 2 * n + n + i]);
    return y;
  };
}

// Random values with a few fixed ones: zero, the kink region, the tails.
Tensor grad_inputs(Shape s, uint32_t seed) {
  Tensor x = randn(std::move(s), seed, 2.5f);
  const float fixed[] = {0.f, -0.5f, 1.f, -3.f, 4.5f, -7.f, 9.f, -12.f};
  for (int64_t i = 0; i < std::min<int64_t>(x.numel(), 8); ++i) x.f32()[i * x.numel() / 8] = fixed[i];
  return x;
}

struct Act {
  const char* name;
  Activation a;
  double (*forward)(double);
  Tensor (*backward)(const Tensor&, const Tensor&);
  Tensor (*backward_ref)(const Tensor&, const Tensor&);
  Tensor (*forward_ref)(const Tensor&);
};
const Act kActs[] = {
    {"silu", Activation::Silu, silu_d, silu_backward, ref::silu_backward, ref::silu},
    {"gelu", Activation::Gelu, gelu_d, gelu_backward, ref::gelu_backward, ref::gelu},
    {"gelu_tanh", Activation::GeluTanh, gelu_tanh_d, gelu_tanh_backward, ref::gelu_tanh_backward, ref::gelu_tanh},
    {"quick_gelu", Activation::QuickGelu, quick_gelu_d, quick_gelu_backward, ref::quick_gelu_backward,
     ref::quick_gelu},
};

TEST(ActivationBackward, ReferenceMatchesFiniteDifferences) {
  const Tensor x = grad_inputs({3, 5, 7}, 1), r = randn({3, 5, 7}, 2);
  for (const Act& act : kActs) {
    // The double forward is the op the library computes.
    EXPECT_TRUE(close(act.forward_ref(x), from_double(x.shape(), elementwise(act.forward)(to_double(x))), 1e-6f,
                      1e-6f))
        << act.name;
    EXPECT_TRUE(matches_finite_differences(act.backward_ref(r, x), elementwise(act.forward), x, r)) << act.name;
  }
}

TEST(ActivationBackward, GegluReferenceMatchesFiniteDifferences) {
  for (Shape s : {Shape{3, 10}, Shape{2, 3, 2}, Shape{1, 14}}) {
    const int64_t n = s.back() / 2;
    const Tensor x = grad_inputs(s, 3);
    Shape ys = s;
    ys.back() = n;
    const Tensor r = randn(ys, 4);
    EXPECT_TRUE(close(ref::geglu(x), from_double(ys, geglu_d(n)(to_double(x))), 1e-6f, 1e-6f)) << shape_str(s);
    EXPECT_TRUE(matches_finite_differences(ref::geglu_backward(r, x), geglu_d(n), x, r)) << shape_str(s);
  }
}

// Values over the whole useful range, including where exp over/underflows and erf saturates.
Tensor wide_inputs() {
  std::vector<float> v;
  for (float x = -120.f; x <= 120.f; x += 0.37f) v.push_back(x);
  for (float x = -8.f; x <= 8.f; x += 0.0013f) v.push_back(x);
  for (float x : {0.f, -0.f, 1e-30f, -1e-30f, 1e-6f, 0.999999f, 1.f, 1.000001f, 3.919f, 3.92f, 9.99f, 10.f, 10.01f,
                  -9.99f, -10.f, -10.01f, 88.f, -88.f, 89.f, -89.f, 1e20f, -1e20f})
    v.push_back(x);
  return Tensor::from_vector({int64_t(v.size())}, v);
}

TEST(ActivationBackward, FastMatchesReference) {
  const Tensor x = wide_inputs(), dy = randn(x.shape(), 5);
  for (const Act& act : kActs) {
    EXPECT_TRUE(close(act.backward(dy, x), act.backward_ref(dy, x), 1e-6f, 1e-5f)) << act.name;
    EXPECT_TRUE(close(act.backward(Tensor::full(x.shape(), 1.f), x),
                      act.backward_ref(Tensor::full(x.shape(), 1.f), x), 1e-6f, 1e-5f))
        << act.name << " (the derivative itself)";
  }
  for (int64_t n : {1, 5, 16, 17, 100003}) {  // tails and the parallel path
    const Tensor y = randn({n}, uint32_t(n), 3.f), g = randn({n}, uint32_t(n + 1));
    for (const Act& act : kActs) EXPECT_TRUE(close(act.backward(g, y), act.backward_ref(g, y), 1e-6f, 1e-5f)) << n;
  }
}

TEST(ActivationBackward, DispatchAndIdentity) {
  const Tensor x = randn({4, 9}, 6, 2.f), dy = randn({4, 9}, 7);
  for (const Act& act : kActs) {
    EXPECT_TRUE(same_bits(activation_backward(dy, x, act.a), act.backward(dy, x))) << act.name;
    EXPECT_TRUE(same_bits(ref::activation_backward(dy, x, act.a), act.backward_ref(dy, x))) << act.name;
  }
  EXPECT_TRUE(same_bits(activation_backward(dy, x, Activation::None), dy));
  EXPECT_TRUE(same_bits(ref::activation_backward(dy, x, Activation::None), dy));
  EXPECT_THROW(silu_backward(dy, Tensor::zeros({4, 8})), Error);
  EXPECT_THROW(ref::gelu_backward(dy, Tensor::zeros({36})), Error);
  EXPECT_THROW(activation_backward(dy, Tensor::zeros({9, 4}), Activation::None), Error);
}

TEST(ActivationBackward, GegluFastMatchesReference) {
  for (Shape s : {Shape{1, 2}, Shape{3, 34}, Shape{2, 7, 2560}, Shape{5, 18}, Shape{4, 77, 1280}}) {
    const Tensor x = randn(s, 8, 2.5f);
    Shape ys = s;
    ys.back() /= 2;
    const Tensor dy = randn(ys, 9);
    EXPECT_TRUE(close(geglu_backward(dy, x), ref::geglu_backward(dy, x), 1e-6f, 1e-5f)) << shape_str(s);
  }
  std::vector<float> v = wide_inputs().to_vector();  // both halves over the whole range
  if (v.size() % 2) v.push_back(0.5f);
  const Tensor x = Tensor::from_vector({1, int64_t(v.size())}, v), dy = randn({1, x.numel() / 2}, 10);
  EXPECT_TRUE(close(geglu_backward(dy, x), ref::geglu_backward(dy, x), 1e-6f, 1e-5f));
  EXPECT_THROW(geglu_backward(Tensor::zeros({2, 2}), Tensor::zeros({2, 3})), Error);
  EXPECT_THROW(geglu_backward(Tensor::zeros({2, 3}), Tensor::zeros({2, 4})), Error);
  EXPECT_THROW(ref::geglu_backward(Tensor::zeros({3, 2}), Tensor::zeros({2, 4})), Error);
}

TEST(ActivationBackward, SameBitsAtOneAndTwoThreads) {
  const Tensor x = randn({3, 100003}, 11, 3.f), dy = randn({3, 100003}, 12);
  for (const Act& act : kActs) EXPECT_TRUE(deterministic([&] { return act.backward(dy, x); })) << act.name;
  const Tensor xg = randn({2, 77, 2560}, 13, 2.f), dyg = randn({2, 77, 1280}, 14);
  EXPECT_TRUE(deterministic([&] { return geglu_backward(dyg, xg); }));
}


// ---- relu, clamp, exp: the plain maps that make model loops visible to a tape ----

// Values at least `gap` away from each of the kinks (finite differences across a kink measure neither side).
Tensor away_from(Shape s, uint32_t seed, std::vector<float> kinks, float gap = 1e-2f) {
  Tensor x = randn(std::move(s), seed, 3.f);
  for (int64_t i = 0; i < x.numel(); ++i)
    for (float k : kinks)
      if (std::fabs(x.f32()[i] - k) < gap) x.f32()[i] = k + (x.f32()[i] < k ? -gap : gap);
  return x;
}

TEST(MapBackward, ReferenceMatchesFiniteDifferences) {
  const Tensor r = randn({4, 5, 6}, 20);
  const Tensor xr = away_from({4, 5, 6}, 21, {0.f});
  auto relu_d = elementwise([](double v) { return v > 0 ? v : 0.0; });
  EXPECT_TRUE(close(ref::relu(xr), from_double(xr.shape(), relu_d(to_double(xr))), 0.f, 0.f));
  EXPECT_TRUE(matches_finite_differences(ref::relu_backward(r, xr), relu_d, xr, r));

  const float lo = -1.5f, hi = 2.f;
  const Tensor xc = away_from({4, 5, 6}, 22, {lo, hi});
  auto clamp_d = elementwise([lo, hi](double v) { return std::min<double>(std::max<double>(v, lo), hi); });
  EXPECT_TRUE(close(ref::clamp(xc, lo, hi), from_double(xc.shape(), clamp_d(to_double(xc))), 0.f, 0.f));
  EXPECT_TRUE(matches_finite_differences(ref::clamp_backward(r, xc, lo, hi), clamp_d, xc, r));

  const Tensor xe = randn({4, 5, 6}, 23, 2.f);
  auto exp_d = elementwise([](double v) { return std::exp(v); });
  EXPECT_TRUE(close(ref::exp(xe), from_double(xe.shape(), exp_d(to_double(xe))), 0.f, 1e-6f));
  // exp's backward takes the forward's output.
  EXPECT_TRUE(matches_finite_differences(ref::exp_backward(r, ref::exp(xe)), exp_d, xe, r));
}

TEST(MapBackward, KinksAndBoundsFollowPyTorch) {
  // relu passes nothing at 0; clamp passes the gradient at its bounds and nothing beyond.
  const Tensor x = Tensor::from_vector({6}, {-1.f, 0.f, -0.f, 1e-30f, -30.f, 20.f});
  const Tensor dy = Tensor::full({6}, 2.f);
  for (auto f : {relu_backward, ref::relu_backward})
    EXPECT_EQ(f(dy, x).to_vector(), (std::vector<float>{0, 0, 0, 2, 0, 2}));
  const Tensor xc = Tensor::from_vector({5}, {-30.5f, -30.f, 0.f, 20.f, 20.5f});
  for (auto f : {clamp_backward, ref::clamp_backward})
    EXPECT_EQ(f(Tensor::full({5}, 3.f), xc, -30.f, 20.f).to_vector(), (std::vector<float>{0, 3, 3, 3, 0}));
  EXPECT_EQ(clamp(xc, -30.f, 20.f).to_vector(), (std::vector<float>{-30, -30, 0, 20, 20}));
  EXPECT_THROW(clamp(xc, 1.f, 0.f), Error);
  EXPECT_THROW(relu_backward(dy, Tensor::zeros({5})), Error);
  EXPECT_THROW(ref::exp_backward(dy, Tensor::zeros({2, 3})), Error);
}

TEST(MapBackward, FastGivesTheReferenceBits) {
  for (int64_t n : {1, 17, 100003}) {  // the tail and the parallel path
    const Tensor x = randn({n}, uint32_t(30 + n), 10.f), dy = randn({n}, uint32_t(31 + n));
    EXPECT_TRUE(same_bits(relu(x), ref::relu(x))) << n;
    EXPECT_TRUE(same_bits(clamp(x, -3.f, 4.f), ref::clamp(x, -3.f, 4.f))) << n;
    EXPECT_TRUE(same_bits(exp(x), ref::exp(x))) << n;
    EXPECT_TRUE(same_bits(relu_backward(dy, x), ref::relu_backward(dy, x))) << n;
    EXPECT_TRUE(same_bits(clamp_backward(dy, x, -3.f, 4.f), ref::clamp_backward(dy, x, -3.f, 4.f))) << n;
    const Tensor e = exp(x);
    EXPECT_TRUE(same_bits(exp_backward(dy, e), ref::exp_backward(dy, e))) << n;
  }
  // Each element is the <cmath> function of it: the loops these ops replace give the same bits.
  const Tensor x = wide_inputs();
  const Tensor e = exp(x), c = clamp(x, -30.f, 20.f);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float v = x.f32()[i];
    EXPECT_EQ(e.f32()[i], std::exp(v)) << v;
    EXPECT_EQ(c.f32()[i], std::clamp(v, -30.f, 20.f)) << v;
  }
}

TEST(MapBackward, SameBitsAtOneAndTwoThreads) {
  const Tensor x = randn({3, 100003}, 40, 3.f), dy = randn({3, 100003}, 41);
  EXPECT_TRUE(deterministic([&] { return relu_backward(dy, x); }));
  EXPECT_TRUE(deterministic([&] { return clamp_backward(dy, x, -1.f, 1.f); }));
  EXPECT_TRUE(deterministic([&] { return exp_backward(dy, x); }));
  EXPECT_TRUE(deterministic([&] { return exp(x); }));
}

// ---- pointwise: the other torch.nn activations (A1111 hypernetworks) ----

// The forwards in double from PyTorch's definitions.
double softplus_d(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }
struct PointwiseCase {
  const char* name;
  Pointwise f;
  double (*forward)(double);
  std::vector<float> kinks;
};
const PointwiseCase kPointwise[] = {
    {"leakyrelu", Pointwise::LeakyRelu, [](double x) { return x > 0 ? x : 0.01 * x; }, {0.f}},
    {"elu", Pointwise::Elu, [](double x) { return x > 0 ? x : std::expm1(x); }, {0.f}},
    {"hardswish", Pointwise::HardSwish,
     [](double x) { return x * std::min(std::max(x + 3, 0.0), 6.0) / 6; }, {-3.f, 3.f}},
    {"tanh", Pointwise::Tanh, [](double x) { return std::tanh(x); }, {}},
    {"sigmoid", Pointwise::Sigmoid, [](double x) { return 1 / (1 + std::exp(-x)); }, {}},
    {"softsign", Pointwise::Softsign, [](double x) { return x / (1 + std::fabs(x)); }, {0.f}},
    {"mish", Pointwise::Mish, [](double x) { return x * std::tanh(softplus_d(x)); }, {20.f}},
};

TEST(PointwiseBackward, ReferenceMatchesFiniteDifferences) {
  const Tensor r = randn({3, 5, 7}, 50);
  for (const PointwiseCase& c : kPointwise) {
    const Tensor x = away_from({3, 5, 7}, 51, c.kinks);
    EXPECT_TRUE(close(ref::pointwise(x, c.f), from_double(x.shape(), elementwise(c.forward)(to_double(x))), 1e-6f,
                      1e-6f))
        << c.name;
    EXPECT_TRUE(matches_finite_differences(ref::pointwise_backward(r, x, c.f), elementwise(c.forward), x, r)) << c.name;
  }
}

TEST(PointwiseBackward, KinksFollowPyTorch) {
  // torch: leaky_relu passes dy·slope at 0, elu passes dy at 0 (x <= 0 uses e^x = 1), hardswish has slope
  // x/3 + 1/2 on [-3, 3] (so -1/2 at -3, 3/2 at 3: torch's hardswish_backward), 0 below and 1 above.
  const Tensor x = Tensor::from_vector({5}, {-3.5f, -3.f, 0.f, 3.f, 3.5f});
  const Tensor dy = Tensor::full({5}, 2.f);
  for (auto f : {pointwise_backward, ref::pointwise_backward}) {
    EXPECT_EQ(f(dy, x, Pointwise::HardSwish).to_vector(), (std::vector<float>{0, -1, 1, 3, 2}));
    EXPECT_EQ(f(dy, x, Pointwise::LeakyRelu).to_vector(), (std::vector<float>{0.02f, 0.02f, 0.02f, 2, 2}));
    EXPECT_EQ(f(dy, x, Pointwise::Elu).to_vector()[2], 2.f);
  }
  EXPECT_EQ(pointwise(x, Pointwise::HardSwish).to_vector(), (std::vector<float>{0, 0, 0, 3, 3.5f}));
  // Mish stays finite where exp overflows.
  const Tensor big = Tensor::from_vector({2}, {100.f, -100.f});
  EXPECT_EQ(pointwise(big, Pointwise::Mish).to_vector()[0], 100.f);
  EXPECT_TRUE(std::isfinite(pointwise_backward(Tensor::full({2}, 1.f), big, Pointwise::Mish).to_vector()[1]));
  EXPECT_THROW(pointwise_backward(dy, Tensor::zeros({4}), Pointwise::Tanh), Error);
}

TEST(PointwiseBackward, FastGivesTheReferenceBitsAtOneAndTwoThreads) {
  const Tensor x = wide_inputs(), dy = randn(x.shape(), 52);
  for (const PointwiseCase& c : kPointwise) {
    EXPECT_TRUE(same_bits(pointwise(x, c.f), ref::pointwise(x, c.f))) << c.name;
    EXPECT_TRUE(same_bits(pointwise_backward(dy, x, c.f), ref::pointwise_backward(dy, x, c.f))) << c.name;
    EXPECT_TRUE(deterministic([&] { return pointwise_backward(dy, x, c.f); })) << c.name;
    EXPECT_TRUE(deterministic([&] { return pointwise(x, c.f); })) << c.name;
  }
}

}  // namespace
}  // namespace pigment::ops
