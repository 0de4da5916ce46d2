#include <gtest/gtest.h>

#include <cmath>

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

// Group norm in double: x [N, C, S] viewed flat; statistics per (n, group).
Doubles group_norm_d(const Doubles& x, const Doubles& g, const Doubles& b, int64_t N, int64_t C, int64_t S,
                     int groups, double eps) {
  Doubles y(x.size());
  const int64_t cg = C / groups, cnt = cg * S;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t gi = 0; gi < groups; ++gi) {
      const int64_t off = (n * C + gi * cg) * S;
      double m = 0, v = 0;
      for (int64_t i = 0; i < cnt; ++i) m += x[size_t(off + i)];
      m /= double(cnt);
      for (int64_t i = 0; i < cnt; ++i) v += (x[size_t(off + i)] - m) * (x[size_t(off + i)] - m);
      const double rstd = 1 / std::sqrt(v / double(cnt) + eps);
      for (int64_t i = 0; i < cnt; ++i) {
        const int64_t c = gi * cg + i / S;
        y[size_t(off + i)] = (x[size_t(off + i)] - m) * rstd * g[size_t(c)] + b[size_t(c)];
      }
    }
  return y;
}

Doubles layer_norm_d(const Doubles& x, const Doubles& g, const Doubles& b, int64_t D, double eps) {
  Doubles y(x.size());
  for (size_t r = 0; r < x.size() / size_t(D); ++r) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < D; ++i) m += x[r * D + i];
    m /= double(D);
    for (int64_t i = 0; i < D; ++i) v += (x[r * D + i] - m) * (x[r * D + i] - m);
    const double rstd = 1 / std::sqrt(v / double(D) + eps);
    for (int64_t i = 0; i < D; ++i) y[r * D + i] = (x[r * D + i] - m) * rstd * g[size_t(i)] + b[size_t(i)];
  }
  return y;
}

Doubles softmax_d(const Doubles& x, int64_t D) {
  Doubles y(x.size());
  for (size_t r = 0; r < x.size() / size_t(D); ++r) {
    double m = -INFINITY, s = 0;
    for (int64_t i = 0; i < D; ++i) m = std::max(m, x[r * D + i]);
    for (int64_t i = 0; i < D; ++i) s += y[r * D + i] = std::exp(x[r * D + i] - m);
    for (int64_t i = 0; i < D; ++i) y[r * D + i] /= s;
  }
  return y;
}

TEST(GroupNormBackward, ReferenceMatchesFiniteDifferences) {
  struct Case {
    Shape x;
    int groups;
    float eps;
  };
  const Case cases[] = {{{2, 4, 3, 2}, 2, 1e-5f}, {{1, 6, 5}, 3, 1e-6f}, {{2, 3, 2, 3}, 1, 1e-2f}, {{1, 4, 7}, 4, 1e-5f}};
  uint32_t seed = 1;
  for (const auto& c : cases) {
    const int64_t N = c.x[0], C = c.x[1], S = shape_numel(c.x) / (N * C);
    Tensor x = randn(c.x, seed++, 1.5f, 0.3f), g = randn({C}, seed++), b = randn({C}, seed++), r = randn(c.x, seed++);
    const Doubles X = doubles(x), G = doubles(g), B = doubles(b), R = doubles(r);
    NormGrads d = ref::group_norm_backward(r, x, c.groups, g, c.eps, true);
    auto f = [&](const Doubles& xv, const Doubles& gv, const Doubles& bv) {
      return group_norm_d(xv, gv, bv, N, C, S, c.groups, c.eps);
    };
    EXPECT_TRUE(grad_close(d.dx, numeric_grad([&](const Doubles& v) { return f(v, G, B); }, X, R))) << shape_str(c.x);
    EXPECT_TRUE(grad_close(d.dgamma, numeric_grad([&](const Doubles& v) { return f(X, v, B); }, G, R)))
        << shape_str(c.x);
    EXPECT_TRUE(grad_close(d.dbeta, numeric_grad([&](const Doubles& v) { return f(X, G, v); }, B, R)))
        << shape_str(c.x);
    NormGrads only_x = ref::group_norm_backward(r, x, c.groups, g, c.eps, false);
    EXPECT_FALSE(only_x.dgamma.defined());
    EXPECT_FALSE(only_x.dbeta.defined());
  }
}

TEST(LayerNormBackward, ReferenceMatchesFiniteDifferences) {
  for (Shape s : {Shape{3, 7}, Shape{2, 2, 5}, Shape{1, 1}}) {
    const int64_t D = s.back();
    Tensor x = randn(s, 10, 2.f, 0.5f), g = randn({D}, 11), b = randn({D}, 12), r = randn(s, 13);
    const Doubles X = doubles(x), G = doubles(g), B = doubles(b), R = doubles(r);
    NormGrads d = ref::layer_norm_backward(r, x, g, 1e-5f, true);
    EXPECT_TRUE(grad_close(d.dx, numeric_grad([&](const Doubles& v) { return layer_norm_d(v, G, B, D, 1e-5); }, X, R)))
        << shape_str(s);
    EXPECT_TRUE(grad_close(d.dgamma, numeric_grad([&](const Doubles& v) { return layer_norm_d(X, v, B, D, 1e-5); }, G, R)))
        << shape_str(s);
    EXPECT_TRUE(grad_close(d.dbeta, numeric_grad([&](const Doubles& v) { return layer_norm_d(X, G, v, D, 1e-5); }, B, R)))
        << shape_str(s);
  }
}

TEST(SoftmaxBackward, ReferenceMatchesFiniteDifferences) {
  for (Shape s : {Shape{3, 7}, Shape{2, 1, 5}, Shape{1, 1}}) {
    Tensor x = randn(s, 20, 2.f), r = randn(s, 21);
    const Doubles X = doubles(x), R = doubles(r);
    EXPECT_TRUE(grad_close(ref::softmax_backward(r, ref::softmax(x)),
                           numeric_grad([&](const Doubles& v) { return softmax_d(v, s.back()); }, X, R)))
        << shape_str(s);
  }
}

TEST(GroupNormBackward, FastMatchesReference) {
  struct Case {
    Shape x;
    int groups;
    float mean;
  };
  const Case cases[] = {{{1, 1, 1, 1}, 1, 0.f},     {{2, 6, 7, 5}, 3, 0.f},    {{2, 320, 9, 9}, 32, 0.f},
                        {{1, 4, 33}, 2, 0.f},       {{1, 8, 13, 11}, 4, 20.f},  // large mean: no cancellation
                        {{1, 64, 40, 40}, 32, 0.f}, {{1, 2, 100, 100}, 1, 10.f}};  // several chunks, the last partial
  uint32_t seed = 30;
  for (const auto& c : cases) {
    const int64_t C = c.x[1];
    Tensor x = randn(c.x, seed++, 1.f, c.mean), dy = randn(c.x, seed++);
    Tensor g = randn({C}, seed++);
    for (DType t : {DType::F32, DType::F16}) {
      Tensor gt = g.to(t);
      NormGrads want = ref::group_norm_backward(dy, x, c.groups, gt, 1e-5f, true);
      NormGrads got = group_norm_backward(dy, x, c.groups, gt, 1e-5f, true);
      EXPECT_LT(rel_err(got.dx, want.dx), 2e-5) << shape_str(c.x) << " " << dtype_name(t);
      EXPECT_LT(rel_err(got.dgamma, want.dgamma), 2e-5) << shape_str(c.x);
      EXPECT_LT(rel_err(got.dbeta, want.dbeta), 1e-6) << shape_str(c.x);
      EXPECT_FALSE(group_norm_backward(dy, x, c.groups, gt, 1e-5f, false).dgamma.defined());
    }
  }
}

TEST(LayerNormBackward, FastMatchesReference) {
  uint32_t seed = 50;
  for (Shape s : {Shape{1}, Shape{3, 7}, Shape{2, 77, 768}, Shape{5, 33}, Shape{4096, 40}, Shape{70, 320}}) {
    Tensor x = randn(s, seed++, 2.f, 0.5f), dy = randn(s, seed++), g = randn({s.back()}, seed++);
    NormGrads want = ref::layer_norm_backward(dy, x, g, 1e-5f, true);
    NormGrads got = layer_norm_backward(dy, x, g, 1e-5f, true);
    EXPECT_LT(rel_err(got.dx, want.dx), 2e-5) << shape_str(s);
    EXPECT_LT(rel_err(got.dgamma, want.dgamma), 2e-5) << shape_str(s);
    EXPECT_LT(rel_err(got.dbeta, want.dbeta), 1e-6) << shape_str(s);
  }
}

TEST(SoftmaxBackward, FastMatchesReference) {
  uint32_t seed = 70;
  for (Shape s : {Shape{1}, Shape{3, 5}, Shape{2, 77}, Shape{8, 4096}, Shape{7, 33}}) {
    Tensor y = ref::softmax(randn(s, seed++, 3.f)), dy = randn(s, seed++);
    EXPECT_LT(rel_err(softmax_backward(dy, y), ref::softmax_backward(dy, y)), 1e-6) << shape_str(s);
  }
}

TEST(NormBackward, SameBitsAtAnyThreadCount) {
  Tensor x = randn({2, 64, 32, 32}, 90), dy = randn({2, 64, 32, 32}, 91), g = randn({64}, 92);
  EXPECT_TRUE(same_bits_at([&] { return group_norm_backward(dy, x, 32, g, 1e-5f, true).dx; }));
  EXPECT_TRUE(same_bits_at([&] { return group_norm_backward(dy, x, 32, g, 1e-5f, true).dgamma; }));
  Tensor xl = randn({2, 1000, 320}, 93), dyl = randn({2, 1000, 320}, 94), gl = randn({320}, 95);
  EXPECT_TRUE(same_bits_at([&] { return layer_norm_backward(dyl, xl, gl, 1e-5f, true).dx; }));
  EXPECT_TRUE(same_bits_at([&] { return layer_norm_backward(dyl, xl, gl, 1e-5f, true).dgamma; }));
  EXPECT_TRUE(same_bits_at([&] { return layer_norm_backward(dyl, xl, gl, 1e-5f, true).dbeta; }));
  Tensor y = ref::softmax(xl);
  EXPECT_TRUE(same_bits_at([&] { return softmax_backward(dyl, y); }));
}

TEST(NormBackward, BadShapesThrow) {
  Tensor g = Tensor::zeros({6});
  EXPECT_THROW(group_norm_backward(Tensor::zeros({1, 6, 2, 2}), Tensor::zeros({1, 6, 2, 2}), 4, g, 1e-5f, true), Error);
  EXPECT_THROW(group_norm_backward(Tensor::zeros({1, 6, 2, 3}), Tensor::zeros({1, 6, 2, 2}), 3, g, 1e-5f, true), Error);
  EXPECT_THROW(layer_norm_backward(Tensor::zeros({2, 5}), Tensor::zeros({2, 5}), g, 1e-5f, true), Error);
  EXPECT_THROW(softmax_backward(Tensor::zeros({2, 5}), Tensor::zeros({2, 4})), Error);
}

}  // namespace
}  // namespace pigment::ops
