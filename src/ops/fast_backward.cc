// Precision::Fast for the backward products (ops/fast_backward.h): what `pigment train --mixed-precision bf16` runs.
// - linear input and weight gradients, convolution weight gradients: the float32 path's products (a linear's dy·w
//   and dyᵀ·x; a convolution's im2col · dyᵀ) on bf16 copies of their operands, by tiled_product_bf16: fixed tiles,
//   each a one-thread oneDNN bf16 matmul over the whole summed dimension, so the bits do not depend on the thread
//   count. The copies are made per call (O(operand) against the product's O(operand × other side)); a weight's bf16
//   copy is never kept here, so a trained weight cannot be served stale.
// - convolution input gradients: oneDNN's backward-data convolution with bf16 diff_dst and weights and a float32
//   diff_src (direct algorithm, as the float32 path), its weights prepared through fast::prepared_bf16 (kept for
//   weights with an owner, as the forward's; a weight changed in place is forgotten by forget_prepared).
// Taken only where oneDNN's implementation name says the fast path's instructions (fast::runs_on). Shape rule on
// AVX-512 BF16 (no AMX), as the forward's: the summed dimension at least 16 (fewer gain nothing).
#include "ops/fast_backward.h"

#include <atomic>

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>

#include "ops/fast_products.h"
#include "ops/onednn.h"
#include "ops/tiled_product.h"

namespace pigment::ops::fast {

namespace {
using dnnl::memory;
using tag = memory::format_tag;
constexpr auto f32 = memory::data_type::f32;
constexpr auto bf16 = memory::data_type::bf16;

bool accept_impl(const char* impl) { return runs_on(active_path(), impl); }

// Whether a product summing over `k` terms goes to the fast path (active here).
bool takes_sum(FastPath path, int64_t k) { return path == FastPath::Amx || (path == FastPath::Avx512Bf16 && k >= 16); }

// t as bf16 elements (a per-call tensor; t itself when it is bf16 already).
Tensor bf16_copy(const Tensor& t) {
  if (t.dtype() == DType::BF16) return t;
  Tensor f = t.dtype() == DType::F32 ? t : t.as_f32();
  Tensor b = Tensor::empty(t.shape(), DType::BF16);
  to_bf16(f.f32(), static_cast<uint16_t*>(b.raw()), size_t(t.numel()));
  return b;
}
const uint16_t* u16(const Tensor& t) { return static_cast<const uint16_t*>(t.raw()); }
uint16_t* u16(Tensor& t) { return static_cast<uint16_t*>(t.raw()); }

std::atomic<bool> g_linear_bf16_forced{false};
bool linear_in_bf16(FastPath path) { return path == FastPath::Amx || (g_linear_bf16_forced && path != FastPath::None); }

int64_t rows_of(const Tensor& t) { return t.ndim() ? t.numel() / std::max<int64_t>(1, t.dim(-1)) : 0; }
}  // namespace

bool linear_backward_in_bf16() { return linear_in_bf16(active_path()); }
void force_bf16_linear_backward(bool on) { g_linear_bf16_forced = on; }

bool linear_backward_input(const Tensor& dy, const Tensor& w, Tensor& dx) {
  const FastPath path = active_path();
  const int64_t out = w.dim(0), in = w.dim(1), rows = rows_of(dy);
  if (!linear_in_bf16(path) || !takes_sum(path, out) || rows == 0 || in == 0) return false;
  const Tensor g = bf16_copy(dy), wb = bf16_copy(w);
  Shape xs = dy.shape();
  xs.back() = in;
  Tensor r = Tensor::empty(xs);
  // dx[rows, in] = dy[rows, out] · w[out, in]
  if (!tiled_product_bf16(1, rows, in, out, {u16(g), out, 1}, {u16(wb), in, 1}, r.f32(), in, 0, accept_impl))
    return false;
  dx = r;
  return true;
}

bool linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw) {
  const FastPath path = active_path();
  const int64_t out = dy.dim(-1), in = x.dim(-1), rows = rows_of(x);
  if (!linear_in_bf16(path) || !takes_sum(path, rows) || out == 0 || in == 0) return false;
  const Tensor g = bf16_copy(dy), xb = bf16_copy(x);
  Tensor gt = Tensor::empty({out, rows}, DType::BF16);  // dyᵀ, so both operands are plain row-major
  detail::transpose_into(u16(g), rows, out, u16(gt));
  Tensor r = Tensor::empty({out, in});
  // dw[out, in] = dyᵀ[out, rows] · x[rows, in]
  if (!tiled_product_bf16(1, out, in, rows, {u16(gt), rows, 1}, {u16(xb), in, 1}, r.f32(), in, 0, accept_impl))
    return false;
  dw = r;
  return true;
}

namespace {
struct BwdDataP {
  dnnl::convolution_backward_data::primitive_desc pd;
  dnnl::convolution_backward_data prim;
};
}  // namespace

bool conv2d_backward_input(const Tensor& dy, const Tensor& w, const detail::ConvShape& s, const Conv2dParams& p,
                           Tensor& dx) {
  const FastPath path = active_path();
  if (!takes_sum(path, s.O) || (path == FastPath::Avx512Bf16 && s.C < 16)) return false;
  const memory::dims strides{p.stride, p.stride}, pad_l{p.pad_top, p.pad_left}, pad_r{p.pad_bottom, p.pad_right};
  std::string key = "fast-conv-bwd-data|";
  for (int64_t v : {s.N, s.C, s.H, s.W, s.O, s.kh, s.kw, int64_t(p.stride), int64_t(p.pad_top), int64_t(p.pad_left),
                    int64_t(p.pad_bottom), int64_t(p.pad_right)})
    key += std::to_string(v) + ",";
  key += path == FastPath::Amx ? "|amx" : "|avx512bf16";
  auto prim = onednn::cached<BwdDataP>(key, [&]() -> std::shared_ptr<BwdDataP> {
    const memory::desc x_md({s.N, s.C, s.H, s.W}, f32, tag::any), w_md({s.O, s.C, s.kh, s.kw}, bf16, tag::any),
        y_md({s.N, s.O, s.Ho, s.Wo}, bf16, tag::any), xh_md({s.N, s.C, s.H, s.W}, bf16, tag::any);
    const auto alg = dnnl::algorithm::convolution_direct;
    try {
      dnnl::convolution_forward::primitive_desc hint(
          dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, xh_md, w_md, y_md, strides, pad_l,
                                          pad_r),
          onednn::engine());
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::convolution_backward_data::primitive_desc pd(
          dnnl::convolution_backward_data::desc(alg, x_md, w_md, y_md, strides, pad_l, pad_r), attr,
          onednn::engine(), hint);
      if (!runs_on(path, pd.impl_info_str())) return nullptr;
      return std::make_shared<BwdDataP>(BwdDataP{pd, dnnl::convolution_backward_data(pd)});
    } catch (const dnnl::error&) {
      return nullptr;
    }
  });
  if (!prim) return false;
  auto& eng = onednn::engine();
  auto& strm = onednn::stream();
  const memory::desc x_plain({s.N, s.C, s.H, s.W}, f32, tag::nchw), y_plain({s.N, s.O, s.Ho, s.Wo}, f32, tag::nchw),
      w_plain({s.O, s.C, s.kh, s.kw}, f32, tag::oihw);
  const onednn::PreparedWeight pw = prepared_bf16(w, w_plain, prim->pd.weights_desc());
  const memory& wm = pw.mem;
  const Tensor g = dy.dtype() == DType::F32 ? dy : dy.as_f32();
  std::shared_ptr<void> dy_buf, dx_buf;
  memory dy_user(y_plain, eng, const_cast<void*>(g.raw()));
  memory dy_mem = onednn::work_memory(prim->pd.diff_dst_desc(), dy_buf);
  dnnl::reorder(dy_user, dy_mem).execute(strm, dy_user, dy_mem);
  Tensor r = Tensor::empty({s.N, s.C, s.H, s.W});
  memory dx_user(x_plain, eng, r.raw());
  const bool blocked_out = prim->pd.diff_src_desc() != x_plain;
  memory dx_mem = blocked_out ? onednn::work_memory(prim->pd.diff_src_desc(), dx_buf) : dx_user;
  prim->prim.execute(strm, {{DNNL_ARG_DIFF_DST, dy_mem},
                            {DNNL_ARG_WEIGHTS, wm},
                            {DNNL_ARG_DIFF_SRC, dx_mem},
                            {DNNL_ARG_SCRATCHPAD, onednn::scratchpad(prim->pd.scratchpad_desc())}});
  if (blocked_out) dnnl::reorder(dx_mem, dx_user).execute(strm, dx_mem, dx_user);
  strm.wait();
  dx = r;
  return true;
}

bool conv2d_backward_weight(const Tensor& dy, const Tensor& x, const detail::ConvShape& s, const Conv2dParams& p,
                            Tensor& dw) {
  const FastPath path = active_path();
  const int64_t P = s.Ho * s.Wo, CKK = s.C * s.kh * s.kw;
  if (!takes_sum(path, s.N * P) || (path == FastPath::Avx512Bf16 && (CKK < 16 || s.O < 16))) return false;
  const Tensor xb = bf16_copy(x), gb = bf16_copy(dy);
  const bool pointwise = s.kh == 1 && s.kw == 1 && p.stride == 1 && p.pad_top == 0 && p.pad_left == 0 &&
                         p.pad_bottom == 0 && p.pad_right == 0;
  // As the float32 path (conv2d_backward.cc): dwᵀ[CKK, O] = col[CKK, nP] · dyᵀ[nP, O] over chunks of images side by
  // side, the chunks added in order; here in bf16 (half the bytes of im2col).
  const int64_t per_image = CKK * P;
  const int64_t chunk =
      std::clamp<int64_t>(((int64_t(8) << 20) + per_image - 1) / std::max<int64_t>(1, per_image), 1, s.N);
  Tensor col_t = Tensor::empty({per_image * chunk}, DType::BF16), dyt_t = Tensor::empty({s.O * P * chunk}, DType::BF16);
  Tensor dwt = Tensor::empty({CKK, s.O});
  uint16_t *col = u16(col_t), *dyt = u16(dyt_t);
  for (int64_t n0 = 0; n0 < s.N; n0 += chunk) {
    const int64_t nc = std::min(chunk, s.N - n0), ld = nc * P;
    for (int64_t i = 0; i < nc; ++i) {
      const uint16_t* xi = u16(xb) + (n0 + i) * s.C * s.H * s.W;
      const uint16_t* gi = u16(gb) + (n0 + i) * s.O * P;
      if (pointwise) {
        for (int64_t c = 0; c < s.C; ++c)
          std::memcpy(col + c * ld + i * P, xi + c * P, size_t(P) * sizeof(uint16_t));
      } else {
        detail::im2col(xi, s, p, col + i * P, ld);
      }
      detail::transpose_into(gi, s.O, P, dyt + i * P * s.O);
    }
    if (!tiled_product_bf16(1, CKK, s.O, ld, {col, ld, 1}, {dyt, s.O, 1}, dwt.f32(), s.O, 0, accept_impl, n0 > 0))
      return false;
  }
  Tensor r = Tensor::empty({s.O, s.C, s.kh, s.kw});
  detail::transpose_into(dwt.f32(), CKK, s.O, r.f32());
  dw = r;
  return true;
}

}  // namespace pigment::ops::fast
