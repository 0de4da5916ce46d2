// Matrix products. Plain loops (the reference); fast kernels are added beside them.
#include <cstring>

#include "ops/ops.h"

namespace pigment::ops {

namespace {
// C[M,N] = A[M,K] · B[K,N] with row strides; A may be transposed (read A[k*lda + m]) and B too (B[n*ldb + k]).
void gemm_ref(int64_t M, int64_t N, int64_t K, const float* A, bool ta, const float* B, bool tb, float* C) {
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    float* c = C + m * N;
    std::memset(c, 0, N * sizeof(float));
    for (int64_t k = 0; k < K; ++k) {
      float a = ta ? A[k * M + m] : A[m * K + k];
      if (!tb) {
        const float* b = B + k * N;
        for (int64_t n = 0; n < N; ++n) c[n] += a * b[n];
      } else {
        for (int64_t n = 0; n < N; ++n) c[n] += a * B[n * K + k];
      }
    }
  }
}
}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias) {
  PIG_CHECK(w.ndim() == 2, "linear: weight must be [out, in], got ", shape_str(w.shape()));
  int64_t in = w.dim(1), out = w.dim(0);
  PIG_CHECK(x.ndim() >= 1 && x.dim(-1) == in, "linear: input ", shape_str(x.shape()), " does not end in ", in,
            " features (weight ", shape_str(w.shape()), ")");
  Tensor xf = x.as_f32(), wf = w.as_f32();
  int64_t rows = x.numel() / in;
  Shape os = x.shape();
  os.back() = out;
  Tensor y = Tensor::empty(os);
  gemm_ref(rows, out, in, xf.f32(), false, wf.f32(), true, y.f32());
  if (bias) {
    PIG_CHECK(bias->numel() == out, "linear: bias has ", bias->numel(), " elements, expected ", out);
    Tensor bf = bias->as_f32();
    float* p = y.f32();
    const float* b = bf.f32();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) p[r * out + o] += b[o];
  }
  return y;
}

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  PIG_CHECK(a.ndim() == 2 || a.ndim() == 3, "matmul: a must be 2-D or 3-D, got ", shape_str(a.shape()));
  PIG_CHECK(b.ndim() == 2 || b.ndim() == 3, "matmul: b must be 2-D or 3-D, got ", shape_str(b.shape()));
  int64_t B = a.ndim() == 3 ? a.dim(0) : 1;
  if (b.ndim() == 3) PIG_CHECK(b.dim(0) == B, "matmul: batch sizes differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
  int64_t M = trans_a ? a.dim(-1) : a.dim(-2), K = trans_a ? a.dim(-2) : a.dim(-1);
  int64_t Kb = trans_b ? b.dim(-1) : b.dim(-2), N = trans_b ? b.dim(-2) : b.dim(-1);
  PIG_CHECK(K == Kb, "matmul: inner dimensions differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
  Tensor af = a.as_f32(), bf = b.as_f32();
  Tensor c = Tensor::empty(a.ndim() == 3 ? Shape{B, M, N} : Shape{M, N});
  for (int64_t i = 0; i < B; ++i)
    gemm_ref(M, N, K, af.f32() + i * M * K, trans_a, bf.f32() + (b.ndim() == 3 ? i * K * N : 0), trans_b,
             c.f32() + i * M * N);
  return c;
}

}  // namespace pigment::ops
