// Backward of the matrix products (linear, matmul). ref::: plain loops, sums in double. Fast: every gradient is a
// product of the forward's operands read with other strides (no transposed copies), computed by tiled_product
// (ops/tiled_product.h): fixed tiles of the result, each by a one-thread oneDNN matmul over the whole summed
// dimension, so that weight gradients (a sum over every row of the batch) have the same bits at any thread count.
#include <vector>

#include "ops/backward.h"
#include "ops/fast_backward.h"
#include "ops/precision.h"
#include "ops/profile.h"
#include "ops/reference.h"
#include "ops/tiled_product.h"

namespace pigment::ops {

namespace {
int64_t leading_rows(const Tensor& x) {
  int64_t r = 1;
  for (int i = 0; i + 1 < x.ndim(); ++i) r *= x.dim(i);
  return r;
}

void check_linear_dy(const Tensor& dy, const Tensor& w, const char* what) {
  PIG_CHECK(w.ndim() == 2, what, ": weight must be [out, in], got ", shape_str(w.shape()));
  PIG_CHECK(dy.ndim() >= 1 && dy.dim(-1) == w.dim(0), what, ": gradient ", shape_str(dy.shape()), " does not end in ",
            w.dim(0), " features (weight ", shape_str(w.shape()), ")");
}

void check_linear_dw(const Tensor& dy, const Tensor& x) {
  PIG_CHECK(dy.ndim() >= 1 && x.ndim() == dy.ndim(), "linear_backward_weight: gradient ", shape_str(dy.shape()),
            " and input ", shape_str(x.shape()), " differ in rank");
  for (int i = 0; i + 1 < x.ndim(); ++i)
    PIG_CHECK(x.dim(i) == dy.dim(i), "linear_backward_weight: gradient ", shape_str(dy.shape()), " and input ",
              shape_str(x.shape()), " have different leading dimensions");
}

// The shapes of a matmul: batch B, op(a) [M, K], op(b) [K, N], and whether b is shared by the batch.
struct MatmulShape {
  int64_t B, M, K, N;
  bool a3, b3;
};
MatmulShape check_matmul_backward(const Tensor& dy, const Tensor& a, const Tensor& b, bool ta, bool tb) {
  PIG_CHECK(a.ndim() == 2 || a.ndim() == 3, "matmul_backward: a must be 2-D or 3-D, got ", shape_str(a.shape()));
  PIG_CHECK(b.ndim() == 2 || b.ndim() == 3, "matmul_backward: b must be 2-D or 3-D, got ", shape_str(b.shape()));
  MatmulShape s{a.ndim() == 3 ? a.dim(0) : 1, ta ? a.dim(-1) : a.dim(-2), ta ? a.dim(-2) : a.dim(-1),
                tb ? b.dim(-2) : b.dim(-1), a.ndim() == 3, b.ndim() == 3};
  if (s.b3) PIG_CHECK(b.dim(0) == s.B, "matmul_backward: batch sizes differ: ", shape_str(a.shape()), " vs ",
                      shape_str(b.shape()));
  PIG_CHECK((tb ? b.dim(-1) : b.dim(-2)) == s.K, "matmul_backward: inner dimensions differ: ", shape_str(a.shape()),
            " vs ", shape_str(b.shape()));
  const Shape want = s.a3 ? Shape{s.B, s.M, s.N} : Shape{s.M, s.N};
  PIG_CHECK(dy.shape() == want, "matmul_backward: gradient ", shape_str(dy.shape()), " is not the product's shape ",
            shape_str(want));
  return s;
}
}  // namespace

namespace ref {
Tensor linear_backward_input(const Tensor& dy, const Tensor& w) {
  check_linear_dy(dy, w, "linear_backward_input");
  const int64_t out = w.dim(0), in = w.dim(1), rows = leading_rows(dy);
  Tensor g = dy.as_f32(), wf = w.as_f32();
  Shape xs = dy.shape();
  xs.back() = in;
  Tensor dx = Tensor::empty(xs);
#pragma omp parallel
  {
    std::vector<double> acc(static_cast<size_t>(in));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t o = 0; o < out; ++o) {
        const double d = g.f32()[r * out + o];
        const float* wr = wf.f32() + o * in;
        for (int64_t i = 0; i < in; ++i) acc[size_t(i)] += d * wr[i];
      }
      for (int64_t i = 0; i < in; ++i) dx.f32()[r * in + i] = float(acc[size_t(i)]);
    }
  }
  return dx;
}

Tensor linear_backward_weight(const Tensor& dy, const Tensor& x) {
  check_linear_dw(dy, x);
  const int64_t out = dy.dim(-1), in = x.dim(-1), rows = leading_rows(x);
  Tensor g = dy.as_f32(), xf = x.as_f32();
  Tensor dw = Tensor::empty({out, in});
#pragma omp parallel
  {
    std::vector<double> acc(static_cast<size_t>(in));
#pragma omp for schedule(static)
    for (int64_t o = 0; o < out; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        const double d = g.f32()[r * out + o];
        const float* xr = xf.f32() + r * in;
        for (int64_t i = 0; i < in; ++i) acc[size_t(i)] += d * xr[i];
      }
      for (int64_t i = 0; i < in; ++i) dw.f32()[o * in + i] = float(acc[size_t(i)]);
    }
  }
  return dw;
}

Tensor sum_to_last_dim(const Tensor& dy) {
  PIG_CHECK(dy.ndim() >= 1, "sum_to_last_dim: expected at least one dimension");
  const int64_t C = dy.dim(-1), rows = leading_rows(dy);
  Tensor g = dy.as_f32();
  std::vector<double> acc(size_t(C), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c) acc[size_t(c)] += g.f32()[r * C + c];
  Tensor out = Tensor::empty({C});
  for (int64_t c = 0; c < C; ++c) out.f32()[c] = float(acc[size_t(c)]);
  return out;
}

MatmulGrads matmul_backward(const Tensor& dy, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                            bool need_da, bool need_db) {
  const MatmulShape s = check_matmul_backward(dy, a, b, trans_a, trans_b);
  const int64_t B = s.B, M = s.M, K = s.K, N = s.N;
  Tensor g = dy.as_f32(), af = a.as_f32(), bf = b.as_f32();
  // op(a)(i, m, k), op(b)(i, k, n) and dy(i, m, n) as the forward reads them.
  auto A = [&](int64_t i, int64_t m, int64_t k) {
    return double(af.f32()[(s.a3 ? i * M * K : 0) + (trans_a ? k * M + m : m * K + k)]);
  };
  auto Bv = [&](int64_t i, int64_t k, int64_t n) {
    return double(bf.f32()[(s.b3 ? i * K * N : 0) + (trans_b ? n * K + k : k * N + n)]);
  };
  auto G = [&](int64_t i, int64_t m, int64_t n) { return double(g.f32()[i * M * N + m * N + n]); };
  MatmulGrads r;
  if (need_da) {
    r.da = Tensor::empty(a.shape());
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < B; ++i)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < K; ++k) {
          double acc = 0;
          for (int64_t n = 0; n < N; ++n) acc += G(i, m, n) * Bv(i, k, n);
          r.da.f32()[i * M * K + (trans_a ? k * M + m : m * K + k)] = float(acc);
        }
  }
  if (need_db) {
    r.db = Tensor::empty(b.shape());
    const int64_t items = s.b3 ? B : 1;  // a b shared by the batch gets the sum over the batch
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t j = 0; j < items; ++j)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n) {
          double acc = 0;
          for (int64_t i = s.b3 ? j : 0; i < (s.b3 ? j + 1 : B); ++i)
            for (int64_t m = 0; m < M; ++m) acc += A(i, m, k) * G(i, m, n);
          r.db.f32()[j * K * N + (trans_b ? n * K + k : k * N + n)] = float(acc);
        }
  }
  return r;
}
}  // namespace ref

Tensor linear_backward_input(const Tensor& dy, const Tensor& w) {
  if (precision() == Precision::Reference) return ref::linear_backward_input(dy, w);
  check_linear_dy(dy, w, "linear_backward_input");
  const int64_t out = w.dim(0), in = w.dim(1), rows = leading_rows(dy);
  profile::Scope prof([&] { return "linear_backward_input " + std::to_string(out) + "->" + std::to_string(in); },
                      2.0 * double(rows) * double(out) * double(in));
  if (Tensor fdx; fast::linear_backward_input(dy, w, fdx)) return fdx;  // Precision::Fast (ops/fast_backward.h)
  Tensor g = dy.as_f32(), wf = w.as_f32();
  Shape xs = dy.shape();
  xs.back() = in;
  Tensor dx = Tensor::empty(xs);
  // dx[rows, in] = dy[rows, out] · w[out, in]
  tiled_product(1, rows, in, out, {g.f32(), out, 1}, {wf.f32(), in, 1}, dx.f32(), in, 0);
  return dx;
}

Tensor linear_backward_weight(const Tensor& dy, const Tensor& x) {
  if (precision() == Precision::Reference) return ref::linear_backward_weight(dy, x);
  check_linear_dw(dy, x);
  const int64_t out = dy.dim(-1), in = x.dim(-1), rows = leading_rows(x);
  profile::Scope prof([&] { return "linear_backward_weight " + std::to_string(in) + "->" + std::to_string(out); },
                      2.0 * double(rows) * double(out) * double(in));
  if (Tensor fdw; fast::linear_backward_weight(dy, x, fdw)) return fdw;  // Precision::Fast
  Tensor g = dy.as_f32(), xf = x.as_f32();
  Tensor dw = Tensor::empty({out, in});
  // dw[out, in] = dyᵀ[out, rows] · x[rows, in]
  tiled_product(1, out, in, rows, {g.f32(), 1, out}, {xf.f32(), in, 1}, dw.f32(), in, 0);
  return dw;
}

Tensor sum_to_last_dim(const Tensor& dy) {
  if (precision() == Precision::Reference) return ref::sum_to_last_dim(dy);
  PIG_CHECK(dy.ndim() >= 1, "sum_to_last_dim: expected at least one dimension");
  const int64_t C = dy.dim(-1), rows = leading_rows(dy);
  Tensor g = dy.as_f32();
  // Float partial sums over fixed blocks of rows (vectorised along the row), combined in double in block order.
  constexpr int64_t kRows = 64;
  const int64_t blocks = (rows + kRows - 1) / kRows;
  std::vector<float> part(size_t(blocks * C), 0.f);
  const float* G = g.f32();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    float* p = part.data() + blk * C;
    for (int64_t r = blk * kRows; r < std::min(rows, (blk + 1) * kRows); ++r)
      for (int64_t c = 0; c < C; ++c) p[c] += G[r * C + c];
  }
  Tensor out = Tensor::empty({C});
#pragma omp parallel for schedule(static) if (blocks * C > 65536)
  for (int64_t c = 0; c < C; ++c) {
    double acc = 0;
    for (int64_t blk = 0; blk < blocks; ++blk) acc += part[size_t(blk * C + c)];
    out.f32()[c] = float(acc);
  }
  return out;
}

MatmulGrads matmul_backward(const Tensor& dy, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b,
                            bool need_da, bool need_db) {
  if (precision() == Precision::Reference) return ref::matmul_backward(dy, a, b, trans_a, trans_b, need_da, need_db);
  const MatmulShape s = check_matmul_backward(dy, a, b, trans_a, trans_b);
  const int64_t B = s.B, M = s.M, K = s.K, N = s.N;
  profile::Scope prof([&] { return std::string("matmul_backward"); },
                      2.0 * double(B * M) * double(N) * double(K) * (int(need_da) + int(need_db)));
  Tensor g = dy.as_f32(), af = a.as_f32(), bf = b.as_f32();
  // op(a)(m, k), op(b)(k, n) and dy(m, n) as strided matrices.
  const StridedMatrix A = trans_a ? StridedMatrix{af.f32(), 1, M, s.a3 ? M * K : 0}
                                  : StridedMatrix{af.f32(), K, 1, s.a3 ? M * K : 0};
  const StridedMatrix Bm = trans_b ? StridedMatrix{bf.f32(), 1, K, s.b3 ? K * N : 0}
                                   : StridedMatrix{bf.f32(), N, 1, s.b3 ? K * N : 0};
  const StridedMatrix G{g.f32(), N, 1, M * N}, Gt{g.f32(), 1, N, M * N};
  auto t = [](StridedMatrix m) { return StridedMatrix{m.data, m.col, m.row, m.batch}; };
  MatmulGrads r;
  if (need_da) {
    r.da = Tensor::empty(a.shape());
    if (!trans_a)  // da[m, k] = Σ_n dy(m, n) · op(b)(k, n)
      tiled_product(B, M, K, N, G, t(Bm), r.da.f32(), K, M * K);
    else  // da stored [K, M]: da[k, m] = Σ_n op(b)(k, n) · dy(m, n)
      tiled_product(B, K, M, N, Bm, Gt, r.da.f32(), M, M * K);
  }
  if (need_db) {
    r.db = Tensor::empty(b.shape());
    const int64_t c_batch = s.b3 ? K * N : 0;  // a b shared by the batch: the sum over the batch
    if (!trans_b)  // db[k, n] = Σ_m op(a)(m, k) · dy(m, n)
      tiled_product(B, K, N, M, t(A), G, r.db.f32(), N, c_batch);
    else  // db stored [N, K]: db[n, k] = Σ_m dy(m, n) · op(a)(m, k)
      tiled_product(B, N, K, M, Gt, A, r.db.f32(), K, c_batch);
  }
  return r;
}

}  // namespace pigment::ops
