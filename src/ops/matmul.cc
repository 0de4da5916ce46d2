// Matrix products. ref::: plain loops. Fast: oneDNN matmul (brgemm kernels), primitives cached by shape, linear
// weights converted and packed once into a WeightCache, bias and activation/residual fused as post-ops.
#include <cstring>
#include <vector>

#include "ops/autograd_ops.h"
#include "ops/fast_products.h"
#include "ops/int8_products.h"
#include "ops/onednn.h"
#include "ops/profile.h"
#include "ops/reference.h"

namespace pigment::ops {

namespace {
// Rows of x seen as a matrix [rows, last dimension] (well defined when the last dimension is 0).
int64_t leading_rows(const Tensor& x) {
  int64_t r = 1;
  for (int i = 0; i + 1 < x.ndim(); ++i) r *= x.dim(i);
  return r;
}
}  // namespace

namespace ref {
namespace {
// C[M,N] = A[M,K] · B[K,N] with row strides; A may be transposed (read A[k*lda + m]) and B too (B[n*ldb + k]).
void gemm_ref(int64_t M, int64_t N, int64_t K, const float* A, bool ta, const float* B, bool tb, float* C) {
  std::vector<float> bt;  // Bᵀ read as B[N, K]: transposed once so that the inner loop runs along memory
  if (tb) {
    bt.resize(size_t(K * N));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) bt[size_t(k * N + n)] = B[n * K + k];
    B = bt.data();
    tb = false;
  }
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
  const int64_t rows = leading_rows(x);
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
  if (b.ndim() == 3)
    PIG_CHECK(b.dim(0) == B, "matmul: batch sizes differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
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
}  // namespace ref

namespace {
using dnnl::memory;
using tag = memory::format_tag;
constexpr auto f32 = memory::data_type::f32;

struct LinearPrimitive {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
};

// Float32 bias data: the tensor itself, or a converted copy held by the cache.
onednn::PreparedWeight bias_memory(const Tensor& bias, const memory::desc& md, WeightCache* cache) {
  if (bias.dtype() == DType::F32) return {memory(md, onednn::engine(), const_cast<void*>(bias.raw())), nullptr};
  return onednn::prepared(cache, bias, md, md);
}
}  // namespace

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias, const LinearOptions& opt) {
  if (autograd::any_needs_grad({&x, &w, bias, opt.residual})) return recorded::linear(x, w, bias, opt);
  PIG_CHECK(w.ndim() == 2, "linear: weight must be [out, in], got ", shape_str(w.shape()));
  const int64_t K = w.dim(1), N = w.dim(0);
  PIG_CHECK(x.ndim() >= 1 && x.dim(-1) == K, "linear: input ", shape_str(x.shape()), " does not end in ", K,
            " features (weight ", shape_str(w.shape()), ")");
  if (bias) PIG_CHECK(bias->numel() == N, "linear: bias has ", bias->numel(), " elements, expected ", N);
  const int64_t M = leading_rows(x);
  profile::Scope prof([&] { return "linear " + std::to_string(K) + "->" + std::to_string(N) + " M" + std::to_string(M); },
                      2.0 * double(M) * double(N) * double(K));
  Shape os = x.shape();
  os.back() = N;
  if (opt.residual)
    PIG_CHECK(opt.residual->shape() == os, "linear: residual ", shape_str(opt.residual->shape()),
              " does not match the output ", shape_str(os));
  if (M == 0 || N == 0 || K == 0) {  // degenerate: nothing for oneDNN to do
    Tensor y = ref::linear(x, w, bias);
    Tensor z = ref::activation(y, opt.activation);
    if (opt.residual) add_inplace(z, *opt.residual);
    return z;
  }
  if (Tensor iy; int8::linear(x, w, bias, opt, iy)) return iy;  // Precision::Int8 (ops/int8_products.h)
  if (Tensor fy; fast::linear(x, w, bias, opt, fy)) return fy;  // Precision::Fast (ops/precision.h)
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty(os);
  if (opt.residual) {
    Tensor r = opt.residual->as_f32();
    std::memcpy(y.raw(), r.raw(), y.nbytes());
  }
  const memory::desc src_md({M, K}, f32, tag::ab), dst_md({M, N}, f32, tag::ab), bias_md({1, N}, f32, tag::ab);
  const memory::desc w_plain({K, N}, f32, tag::ba);  // w is [N, K] row-major: (k, n) at n·K + k
  std::string key = "linear|" + std::to_string(M) + "," + std::to_string(K) + "," + std::to_string(N) + "|" +
                    std::to_string(bias != nullptr) + "|" + std::to_string(int(opt.activation)) + "|" +
                    std::to_string(opt.residual != nullptr);
  auto p = onednn::cached<LinearPrimitive>(key, [&] {
    dnnl::post_ops po;
    onednn::append_activation(po, opt.activation);
    if (opt.residual) po.append_sum(1.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const memory::desc w_any({K, N}, f32, tag::any);
    auto d = bias ? dnnl::matmul::desc(src_md, w_any, bias_md, dst_md) : dnnl::matmul::desc(src_md, w_any, dst_md);
    dnnl::matmul::primitive_desc pd(d, attr, onednn::engine());
    return std::make_shared<LinearPrimitive>(LinearPrimitive{pd, dnnl::matmul(pd)});
  });
  const onednn::PreparedWeight wp = onednn::prepared(opt.cache, w, w_plain, p->pd.weights_desc());
  const memory& wm = wp.mem;
  onednn::PreparedWeight bp;
  if (bias) bp = bias_memory(*bias, bias_md, opt.cache);
  memory src(src_md, onednn::engine(), const_cast<void*>(xf.raw()));
  memory dst(dst_md, onednn::engine(), y.raw());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, dst}};
  if (bias) args[DNNL_ARG_BIAS] = bp.mem;
  args[DNNL_ARG_SCRATCHPAD] = onednn::scratchpad(p->pd.scratchpad_desc());
  p->prim.execute(onednn::stream(), args);
  onednn::stream().wait();
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias) { return linear(x, w, bias, LinearOptions{}); }

namespace {
struct MatmulPrimitive {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
};
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  if (autograd::any_needs_grad({&a, &b})) return recorded::matmul(a, b, trans_a, trans_b);
  PIG_CHECK(a.ndim() == 2 || a.ndim() == 3, "matmul: a must be 2-D or 3-D, got ", shape_str(a.shape()));
  PIG_CHECK(b.ndim() == 2 || b.ndim() == 3, "matmul: b must be 2-D or 3-D, got ", shape_str(b.shape()));
  const int64_t B = a.ndim() == 3 ? a.dim(0) : 1;
  if (b.ndim() == 3)
    PIG_CHECK(b.dim(0) == B, "matmul: batch sizes differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
  const int64_t M = trans_a ? a.dim(-1) : a.dim(-2), K = trans_a ? a.dim(-2) : a.dim(-1);
  const int64_t Kb = trans_b ? b.dim(-1) : b.dim(-2), N = trans_b ? b.dim(-2) : b.dim(-1);
  PIG_CHECK(K == Kb, "matmul: inner dimensions differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
  if (B == 0 || M == 0 || N == 0 || K == 0) return ref::matmul(a, b, trans_a, trans_b);
  profile::Scope prof([&] { return "matmul"; }, 2.0 * double(B * M) * double(N) * double(K));
  Tensor af = a.as_f32(), bf = b.as_f32();
  Tensor c = Tensor::empty(a.ndim() == 3 ? Shape{B, M, N} : Shape{M, N});
  const bool shared_b = b.ndim() == 2 && B > 1;
  // One batched primitive; a 2-D b shared by the batch is folded into M when a is not transposed, else the batch
  // runs as a loop over a 2-D primitive (oneDNN's batch strides cannot be zero).
  const bool fold = shared_b && !trans_a;
  const int64_t Bp = shared_b ? 1 : B, Mp = fold ? B * M : M;
  const int64_t loops = shared_b && !fold ? B : 1;
  const memory::dims a_dims{Bp, Mp, K}, b_dims{Bp, K, N}, c_dims{Bp, Mp, N};
  const memory::dims a_str = trans_a ? memory::dims{M * K, 1, Mp} : memory::dims{Mp * K, K, 1};
  const memory::dims b_str = trans_b ? memory::dims{K * N, 1, K} : memory::dims{K * N, N, 1};
  const memory::desc a_md(a_dims, f32, a_str), b_md(b_dims, f32, b_str), c_md(c_dims, f32, tag::abc);
  std::string key = "matmul|" + std::to_string(Bp) + "," + std::to_string(Mp) + "," + std::to_string(K) + "," +
                    std::to_string(N) + "|" + std::to_string(trans_a) + std::to_string(trans_b);
  auto p = onednn::cached<MatmulPrimitive>(key, [&] {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, onednn::engine());
    return std::make_shared<MatmulPrimitive>(MatmulPrimitive{pd, dnnl::matmul(pd)});
  });
  memory scratch = onednn::scratchpad(p->pd.scratchpad_desc());
  for (int64_t i = 0; i < loops; ++i) {
    memory am(a_md, onednn::engine(), const_cast<float*>(af.f32()) + i * M * K);
    memory bm(b_md, onednn::engine(), const_cast<float*>(bf.f32()));
    memory cm(c_md, onednn::engine(), c.f32() + i * M * N);
    p->prim.execute(onednn::stream(),
                    {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}, {DNNL_ARG_SCRATCHPAD, scratch}});
  }
  onednn::stream().wait();
  return c;
}

}  // namespace pigment::ops
