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

// y[r, o] = Σ_i x[r, i] w[o, i] + b[o], in double.
Doubles linear_d(const Doubles& x, const Doubles& w, const Doubles& b, int64_t rows, int64_t in, int64_t out) {
  Doubles y(size_t(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[size_t(o)];
      for (int64_t i = 0; i < in; ++i) s += x[size_t(r * in + i)] * w[size_t(o * in + i)];
      y[size_t(r * out + o)] = s;
    }
  return y;
}

TEST(LinearBackward, ReferenceMatchesFiniteDifferences) {
  const int64_t in = 5, out = 4;
  Tensor x = randn({2, 3, in}, 1), w = randn({out, in}, 2), b = randn({out}, 3), r = randn({2, 3, out}, 4);
  const Doubles X = doubles(x), W = doubles(w), B = doubles(b), R = doubles(r);
  const int64_t rows = 6;
  EXPECT_TRUE(grad_close(ref::linear_backward_input(r, w),
                         numeric_grad([&](const Doubles& v) { return linear_d(v, W, B, rows, in, out); }, X, R)));
  EXPECT_TRUE(grad_close(ref::linear_backward_weight(r, x),
                         numeric_grad([&](const Doubles& v) { return linear_d(X, v, B, rows, in, out); }, W, R)));
  EXPECT_TRUE(grad_close(ref::sum_to_last_dim(r),
                         numeric_grad([&](const Doubles& v) { return linear_d(X, W, v, rows, in, out); }, B, R)));
  EXPECT_EQ(ref::linear_backward_input(r, w).shape(), x.shape());
  EXPECT_EQ(ref::linear_backward_weight(r, x).shape(), w.shape());
}

// The forward's matmul in double: a [B, M, K] or [M, K] (or transposed), b [B, K, N] or [K, N] (or transposed).
Doubles matmul_d(const Doubles& a, const Doubles& b, int64_t B, int64_t M, int64_t K, int64_t N, bool ta, bool tb,
                 bool b3) {
  Doubles y(size_t(B * M * N));
  for (int64_t i = 0; i < B; ++i)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += a[size_t(i * M * K + (ta ? k * M + m : m * K + k))] *
               b[size_t((b3 ? i * K * N : 0) + (tb ? n * K + k : k * N + n))];
        y[size_t((i * M + m) * N + n)] = s;
      }
  return y;
}

struct MatmulCase {
  int64_t B, M, K, N;
  bool a3, b3;
};

Shape a_shape(const MatmulCase& c, bool ta) {
  Shape s = ta ? Shape{c.K, c.M} : Shape{c.M, c.K};
  if (c.a3) s.insert(s.begin(), c.B);
  return s;
}
Shape b_shape(const MatmulCase& c, bool tb) {
  Shape s = tb ? Shape{c.N, c.K} : Shape{c.K, c.N};
  if (c.b3) s.insert(s.begin(), c.B);
  return s;
}

TEST(MatmulBackward, ReferenceMatchesFiniteDifferences) {
  const MatmulCase cases[] = {{1, 3, 4, 5, false, false}, {2, 3, 4, 5, true, true}, {3, 2, 5, 3, true, false}};
  uint32_t seed = 10;
  for (const auto& c : cases)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        Tensor a = randn(a_shape(c, ta), seed++), b = randn(b_shape(c, tb), seed++);
        Tensor r = randn(c.a3 ? Shape{c.B, c.M, c.N} : Shape{c.M, c.N}, seed++);
        const Doubles A = doubles(a), Bd = doubles(b), R = doubles(r);
        const int64_t B = c.a3 ? c.B : 1;
        MatmulGrads g = ref::matmul_backward(r, a, b, ta, tb);
        EXPECT_EQ(g.da.shape(), a.shape());
        EXPECT_EQ(g.db.shape(), b.shape());
        EXPECT_TRUE(grad_close(
            g.da, numeric_grad([&](const Doubles& v) { return matmul_d(v, Bd, B, c.M, c.K, c.N, ta, tb, c.b3); }, A, R)))
            << "da B" << c.B << " ta " << ta << " tb " << tb << " shared b " << !c.b3;
        EXPECT_TRUE(grad_close(
            g.db, numeric_grad([&](const Doubles& v) { return matmul_d(A, v, B, c.M, c.K, c.N, ta, tb, c.b3); }, Bd, R)))
            << "db B" << c.B << " ta " << ta << " tb " << tb << " shared b " << !c.b3;
        MatmulGrads only_a = ref::matmul_backward(r, a, b, ta, tb, true, false);
        EXPECT_TRUE(only_a.da.defined());
        EXPECT_FALSE(only_a.db.defined());
      }
}

TEST(LinearBackward, FastMatchesReference) {
  struct Case {
    Shape x;
    int64_t out;
  };
  const Case cases[] = {{{1, 1}, 1}, {{7, 13}, 5}, {{2, 77, 96}, 130}, {{4096, 40}, 8}, {{3, 300, 70}, 257}};
  uint32_t seed = 100;
  for (const auto& c : cases) {
    const int64_t in = c.x.back();
    Tensor x = randn(c.x, seed++);
    Tensor w = randn({c.out, in}, seed++, 1.f / std::sqrt(float(in)));
    Shape ys = c.x;
    ys.back() = c.out;
    Tensor dy = randn(ys, seed++);
    for (DType t : {DType::F32, DType::F16, DType::BF16}) {
      Tensor wt = w.to(t);
      EXPECT_LT(rel_err(linear_backward_input(dy, wt), ref::linear_backward_input(dy, wt)), 1e-5)
          << shape_str(c.x) << " -> " << c.out << " " << dtype_name(t);
    }
    EXPECT_LT(rel_err(linear_backward_weight(dy, x), ref::linear_backward_weight(dy, x)), 1e-5) << shape_str(c.x);
    EXPECT_LT(rel_err(sum_to_last_dim(dy), ref::sum_to_last_dim(dy)), 1e-6) << shape_str(c.x);
  }
}

TEST(MatmulBackward, FastMatchesReference) {
  const MatmulCase cases[] = {{1, 1, 1, 1, false, false},   {3, 37, 65, 129, true, true},
                              {4, 70, 20, 33, true, false}, {1, 130, 200, 90, false, false},
                              {2, 5, 300, 7, true, true}};
  uint32_t seed = 200;
  for (const auto& c : cases)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        Tensor a = randn(a_shape(c, ta), seed++), b = randn(b_shape(c, tb), seed++);
        Tensor dy = randn(c.a3 ? Shape{c.B, c.M, c.N} : Shape{c.M, c.N}, seed++);
        MatmulGrads want = ref::matmul_backward(dy, a, b, ta, tb), got = matmul_backward(dy, a, b, ta, tb);
        EXPECT_LT(rel_err(got.da, want.da), 1e-5) << c.B << "x" << c.M << "x" << c.K << "x" << c.N << " " << ta << tb;
        EXPECT_LT(rel_err(got.db, want.db), 1e-5) << c.B << "x" << c.M << "x" << c.K << "x" << c.N << " " << ta << tb;
      }
}

TEST(MatmulBackward, SameBitsAtAnyThreadCount) {
  // Weight gradients sum over thousands of rows into a small result: the shape where a product's work split over
  // threads would cut the sum.
  Tensor x = randn({2, 2048, 320}, 300), dy = randn({2, 2048, 4}, 301), w = randn({4, 320}, 302);
  EXPECT_TRUE(same_bits_at([&] { return linear_backward_weight(dy, x); }));
  EXPECT_TRUE(same_bits_at([&] { return linear_backward_input(dy, w); }));
  EXPECT_TRUE(same_bits_at([&] { return sum_to_last_dim(x); }));
  Tensor dy2 = randn({2, 2048, 320}, 303), w2 = randn({320, 320}, 304);
  EXPECT_TRUE(same_bits_at([&] { return linear_backward_weight(dy2, x); }));
  EXPECT_TRUE(same_bits_at([&] { return linear_backward_input(dy2, w2); }));
  Tensor a = randn({4, 500, 40}, 305), b = randn({40, 64}, 306), g = randn({4, 500, 64}, 307);
  EXPECT_TRUE(same_bits_at([&] { return matmul_backward(g, a, b, false, false).db; }));
  EXPECT_TRUE(same_bits_at([&] { return matmul_backward(g, a, b, false, false).da; }));
}

TEST(MatmulBackward, BadShapesThrow) {
  EXPECT_THROW(linear_backward_input(Tensor::zeros({3, 4}), Tensor::zeros({5, 6})), Error);
  EXPECT_THROW(linear_backward_weight(Tensor::zeros({3, 4}), Tensor::zeros({2, 6})), Error);
  EXPECT_THROW(matmul_backward(Tensor::zeros({3, 5}), Tensor::zeros({3, 4}), Tensor::zeros({4, 6}), false, false),
               Error);
}

}  // namespace
}  // namespace pigment::ops
