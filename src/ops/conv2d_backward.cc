// Backward of conv2d. ref::: direct loops, sums in double. Fast:
// - input gradient: oneDNN's convolution backward-data primitive (direct algorithm) on blocked activations,
//   reordered in and out per call like the forward, its weights prepared once into the WeightCache (f16/bf16
//   converted there);
// - weight gradient: im2col of each image, then dw[O, C·kh·kw] = Σ_n dy_n[O, H'W'] · col_nᵀ by tiled_product
//   (ops/tiled_product.h), whose fixed tiles give the same bits at any thread count (oneDNN's backward-weights
//   primitive splits the sum over images and rows across threads, so its rounding follows the thread count);
// - bias gradient: per-channel sums of fixed chunks combined in double.
#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/backward.h"
#include "ops/conv_im2col.h"
#include "ops/fast_backward.h"
#include "ops/onednn.h"
#include "ops/precision.h"
#include "ops/profile.h"
#include "ops/reference.h"
#include "ops/simd_kernels.h"
#include "ops/tiled_product.h"

namespace pigment::ops {

namespace {
using detail::ConvShape;
using detail::im2col;
using detail::transpose_into;

ConvShape check_conv_backward(const char* what, const Tensor& dy, const Shape& x_shape, const Shape& w_shape,
                              const Conv2dParams& p) {
  PIG_CHECK(x_shape.size() == 4 && w_shape.size() == 4 && dy.ndim() == 4, what,
            ": expected x [N,C,H,W], w [O,C,kh,kw] and dy [N,O,H',W'], got ", shape_str(x_shape), ", ",
            shape_str(w_shape), " and ", shape_str(dy.shape()));
  ConvShape s{x_shape[0], x_shape[1], x_shape[2], x_shape[3], w_shape[0], w_shape[2], w_shape[3], 0, 0};
  PIG_CHECK(w_shape[1] == s.C, what, ": input has ", s.C, " channels, weight ", shape_str(w_shape), " expects ",
            w_shape[1]);
  PIG_CHECK(p.stride >= 1, what, ": stride must be positive, got ", p.stride);
  PIG_CHECK(p.pad_top >= 0 && p.pad_left >= 0 && p.pad_bottom >= 0 && p.pad_right >= 0, what,
            ": padding must not be negative");
  PIG_CHECK(s.H + p.pad_top + p.pad_bottom >= s.kh && s.W + p.pad_left + p.pad_right >= s.kw, what,
            ": kernel ", shape_str(w_shape), " is larger than the padded input ", shape_str(x_shape));
  s.Ho = (s.H + p.pad_top + p.pad_bottom - s.kh) / p.stride + 1;
  s.Wo = (s.W + p.pad_left + p.pad_right - s.kw) / p.stride + 1;
  const Shape want{s.N, s.O, s.Ho, s.Wo};
  PIG_CHECK(dy.shape() == want, what, ": gradient ", shape_str(dy.shape()), " is not the convolution's output ",
            shape_str(want), " (x ", shape_str(x_shape), ", w ", shape_str(w_shape), ")");
  return s;
}

bool degenerate(const ConvShape& s) { return s.N == 0 || s.C == 0 || s.O == 0 || s.H == 0 || s.W == 0; }
}  // namespace

namespace ref {
Tensor conv2d_backward_input(const Tensor& dy, const Tensor& w, const Shape& x_shape, Conv2dParams p) {
  const ConvShape s = check_conv_backward("conv2d_backward_input", dy, x_shape, w.shape(), p);
  Tensor g = dy.as_f32(), wf = w.as_f32();
  Tensor dx = Tensor::empty(x_shape);
  const float *G = g.f32(), *Wt = wf.f32();
#pragma omp parallel
  {
    std::vector<double> acc(size_t(s.H * s.W));
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t c = 0; c < s.C; ++c) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t o = 0; o < s.O; ++o) {
          const float* go = G + (n * s.O + o) * s.Ho * s.Wo;
          for (int64_t ky = 0; ky < s.kh; ++ky)
            for (int64_t kx = 0; kx < s.kw; ++kx) {
              const double wv = Wt[((o * s.C + c) * s.kh + ky) * s.kw + kx];
              for (int64_t oy = 0; oy < s.Ho; ++oy) {
                const int64_t iy = oy * p.stride + ky - p.pad_top;
                if (iy < 0 || iy >= s.H) continue;
                for (int64_t ox = 0; ox < s.Wo; ++ox) {
                  const int64_t ix = ox * p.stride + kx - p.pad_left;
                  if (ix < 0 || ix >= s.W) continue;
                  acc[size_t(iy * s.W + ix)] += wv * go[oy * s.Wo + ox];
                }
              }
            }
        }
        float* d = dx.f32() + (n * s.C + c) * s.H * s.W;
        for (int64_t i = 0; i < s.H * s.W; ++i) d[i] = float(acc[size_t(i)]);
      }
  }
  return dx;
}

Tensor conv2d_backward_weight(const Tensor& dy, const Tensor& x, const Shape& w_shape, Conv2dParams p) {
  const ConvShape s = check_conv_backward("conv2d_backward_weight", dy, x.shape(), w_shape, p);
  Tensor g = dy.as_f32(), xf = x.as_f32();
  Tensor dw = Tensor::empty(w_shape);
  const float *G = g.f32(), *X = xf.f32();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t o = 0; o < s.O; ++o)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t ky = 0; ky < s.kh; ++ky)
        for (int64_t kx = 0; kx < s.kw; ++kx) {
          double acc = 0;
          for (int64_t n = 0; n < s.N; ++n) {
            const float* go = G + (n * s.O + o) * s.Ho * s.Wo;
            const float* xc = X + (n * s.C + c) * s.H * s.W;
            for (int64_t oy = 0; oy < s.Ho; ++oy) {
              const int64_t iy = oy * p.stride + ky - p.pad_top;
              if (iy < 0 || iy >= s.H) continue;
              for (int64_t ox = 0; ox < s.Wo; ++ox) {
                const int64_t ix = ox * p.stride + kx - p.pad_left;
                if (ix < 0 || ix >= s.W) continue;
                acc += double(go[oy * s.Wo + ox]) * xc[iy * s.W + ix];
              }
            }
          }
          dw.f32()[((o * s.C + c) * s.kh + ky) * s.kw + kx] = float(acc);
        }
  return dw;
}

Tensor sum_to_channels(const Tensor& dy) {
  PIG_CHECK(dy.ndim() >= 2, "sum_to_channels: expected [N, C, ...], got ", shape_str(dy.shape()));
  const int64_t N = dy.dim(0), C = dy.dim(1), S = N * C != 0 ? dy.numel() / (N * C) : 0;
  Tensor g = dy.as_f32();
  Tensor out = Tensor::empty({C});
  for (int64_t c = 0; c < C; ++c) {
    double acc = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < S; ++i) acc += g.f32()[(n * C + c) * S + i];
    out.f32()[c] = float(acc);
  }
  return out;
}
}  // namespace ref

namespace {
using dnnl::memory;
using tag = memory::format_tag;
constexpr auto f32 = memory::data_type::f32;

struct ConvBackwardDataPrimitive {
  dnnl::convolution_backward_data::primitive_desc pd;
  dnnl::convolution_backward_data prim;
};

std::string shape_key(const char* kind, const ConvShape& s, const Conv2dParams& p) {
  std::string k = kind;
  for (int64_t v : {s.N, s.C, s.H, s.W, s.O, s.kh, s.kw, int64_t(p.stride), int64_t(p.pad_top), int64_t(p.pad_left),
                    int64_t(p.pad_bottom), int64_t(p.pad_right)})
    k += ',', k += std::to_string(v);
  return k;
}

std::shared_ptr<ConvBackwardDataPrimitive> make_backward_data(const ConvShape& s, const Conv2dParams& p) {
  const memory::desc x_any({s.N, s.C, s.H, s.W}, f32, tag::any), w_any({s.O, s.C, s.kh, s.kw}, f32, tag::any),
      y_any({s.N, s.O, s.Ho, s.Wo}, f32, tag::any);
  const memory::dims strides{p.stride, p.stride}, pad_l{p.pad_top, p.pad_left}, pad_r{p.pad_bottom, p.pad_right};
  const auto alg = dnnl::algorithm::convolution_direct;
  // oneDNN asks for the forward's primitive descriptor as a hint for the layouts.
  dnnl::convolution_forward::primitive_desc hint(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, x_any, w_any, y_any, strides, pad_l,
                                      pad_r),
      onednn::engine());
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::convolution_backward_data::primitive_desc pd(
      dnnl::convolution_backward_data::desc(alg, x_any, w_any, y_any, strides, pad_l, pad_r), attr, onednn::engine(),
      hint);
  return std::make_shared<ConvBackwardDataPrimitive>(
      ConvBackwardDataPrimitive{pd, dnnl::convolution_backward_data(pd)});
}

}  // namespace

Tensor conv2d_backward_input(const Tensor& dy, const Tensor& w, const Shape& x_shape, Conv2dParams p) {
  if (precision() == Precision::Reference) return ref::conv2d_backward_input(dy, w, x_shape, p);
  const ConvShape s = check_conv_backward("conv2d_backward_input", dy, x_shape, w.shape(), p);
  if (degenerate(s)) return ref::conv2d_backward_input(dy, w, x_shape, p);
  profile::Scope prof(
      [&] {
        return "conv2d_backward_input " + std::to_string(s.kh) + "x" + std::to_string(s.kw) +
               (p.stride > 1 ? " s2 " : " ") + std::to_string(s.C) + "->" + std::to_string(s.O) + " @" +
               std::to_string(s.Ho) + "x" + std::to_string(s.Wo) + " N" + std::to_string(s.N);
      },
      2.0 * double(s.N * s.O * s.Ho * s.Wo) * double(s.C * s.kh * s.kw));
  if (Tensor fdx; fast::conv2d_backward_input(dy, w, s, p, fdx)) return fdx;  // Precision::Fast (ops/fast_backward.h)
  auto prim = onednn::cached<ConvBackwardDataPrimitive>(shape_key("conv_bwd_data", s, p),
                                                        [&] { return make_backward_data(s, p); });
  const auto& pd = prim->pd;
  auto& eng = onednn::engine();
  auto& strm = onednn::stream();
  const memory::desc w_plain({s.O, s.C, s.kh, s.kw}, f32, tag::oihw);
  const onednn::PreparedWeight wp = onednn::prepared(nullptr, w, w_plain, pd.weights_desc());
  Tensor g = dy.as_f32();
  Tensor dx = Tensor::empty(x_shape);
  const memory::desc x_plain({s.N, s.C, s.H, s.W}, f32, tag::nchw), y_plain({s.N, s.O, s.Ho, s.Wo}, f32, tag::nchw);
  memory dy_user(y_plain, eng, const_cast<float*>(g.f32())), dx_user(x_plain, eng, dx.f32());
  memory dy_mem = dy_user, dx_mem = dx_user;
  std::shared_ptr<void> dy_buf, dx_buf;
  if (pd.diff_dst_desc() != y_plain) {
    dy_mem = onednn::work_memory(pd.diff_dst_desc(), dy_buf);
    dnnl::reorder(dy_user, dy_mem).execute(strm, dy_user, dy_mem);
  }
  const bool blocked_out = pd.diff_src_desc() != x_plain;
  if (blocked_out) dx_mem = onednn::work_memory(pd.diff_src_desc(), dx_buf);
  prim->prim.execute(strm, {{DNNL_ARG_DIFF_DST, dy_mem},
                            {DNNL_ARG_WEIGHTS, wp.mem},
                            {DNNL_ARG_DIFF_SRC, dx_mem},
                            {DNNL_ARG_SCRATCHPAD, onednn::scratchpad(pd.scratchpad_desc())}});
  if (blocked_out) dnnl::reorder(dx_mem, dx_user).execute(strm, dx_mem, dx_user);
  strm.wait();
  return dx;
}

Tensor conv2d_backward_weight(const Tensor& dy, const Tensor& x, const Shape& w_shape, Conv2dParams p) {
  if (precision() == Precision::Reference) return ref::conv2d_backward_weight(dy, x, w_shape, p);
  const ConvShape s = check_conv_backward("conv2d_backward_weight", dy, x.shape(), w_shape, p);
  if (degenerate(s)) return ref::conv2d_backward_weight(dy, x, w_shape, p);
  profile::Scope prof(
      [&] {
        return "conv2d_backward_weight " + std::to_string(s.kh) + "x" + std::to_string(s.kw) +
               (p.stride > 1 ? " s2 " : " ") + std::to_string(s.C) + "->" + std::to_string(s.O) + " @" +
               std::to_string(s.Ho) + "x" + std::to_string(s.Wo) + " N" + std::to_string(s.N);
      },
      2.0 * double(s.N * s.O * s.Ho * s.Wo) * double(s.C * s.kh * s.kw));
  if (Tensor fdw; fast::conv2d_backward_weight(dy, x, s, p, fdw)) return fdw;  // Precision::Fast
  Tensor g = dy.as_f32(), xf = x.as_f32();
  Tensor dw = Tensor::empty(w_shape);
  const int64_t P = s.Ho * s.Wo, CKK = s.C * s.kh * s.kw;
  const bool pointwise = s.kh == 1 && s.kw == 1 && p.stride == 1 && p.pad_top == 0 && p.pad_left == 0 &&
                         p.pad_bottom == 0 && p.pad_right == 0;
  // dwᵀ[CKK, O] = col[CKK, nP] · dyᵀ[nP, O] over a chunk of n images side by side (their im2col rows next to each
  // other, each image's dy transposed below the previous one's): one product with a long K in the row-major form
  // oneDNN's matmul runs fastest, instead of one per image, which at small image sizes is a short K per call and
  // spends its time in calls and in reading and writing dw. Chunks of at least 32 MiB of im2col (or all images) are
  // added in order. The buffers are tensors: uninitialised, and at 32 MiB and more reused by core/allocator, since
  // a fresh buffer of that size costs more in page faults than the product itself.
  const int64_t per_image = CKK * P;
  const int64_t chunk = std::clamp<int64_t>(((int64_t(8) << 20) + per_image - 1) / std::max<int64_t>(1, per_image), 1, s.N);
  Tensor col_t = Tensor::empty({per_image * chunk}), dyt_t = Tensor::empty({s.O * P * chunk});
  Tensor dwt = Tensor::empty({CKK, s.O});
  float *col = col_t.f32(), *dyt = dyt_t.f32();
  for (int64_t n0 = 0; n0 < s.N; n0 += chunk) {
    const int64_t nc = std::min(chunk, s.N - n0), ld = nc * P;
    for (int64_t i = 0; i < nc; ++i) {
      const float* xi = xf.f32() + (n0 + i) * s.C * s.H * s.W;
      const float* gi = g.f32() + (n0 + i) * s.O * P;
      if (pointwise) {
        for (int64_t c = 0; c < s.C; ++c) std::memcpy(col + c * ld + i * P, xi + c * P, size_t(P) * sizeof(float));
      } else {
        im2col(xi, s, p, col + i * P, ld);
      }
      transpose_into(gi, s.O, P, dyt + i * P * s.O);
    }
    tiled_product(1, CKK, s.O, ld, {col, ld, 1}, {dyt, s.O, 1}, dwt.f32(), s.O, 0, n0 > 0);
  }
  transpose_into(dwt.f32(), CKK, s.O, dw.f32());
  return dw;
}

Tensor sum_to_channels(const Tensor& dy) {
  if (precision() == Precision::Reference) return ref::sum_to_channels(dy);
  PIG_CHECK(dy.ndim() >= 2, "sum_to_channels: expected [N, C, ...], got ", shape_str(dy.shape()));
  const int64_t N = dy.dim(0), C = dy.dim(1), S = N * C != 0 ? dy.numel() / (N * C) : 0;
  Tensor g = dy.as_f32();
  // Per (image, channel): float sums of fixed chunks, added in double; then the images in order.
  constexpr int64_t kChunk = 8192;
  std::vector<double> rows(size_t(N * C));
#pragma omp parallel for schedule(static) if (dy.numel() > 65536)
  for (int64_t nc = 0; nc < N * C; ++nc) {
    double acc = 0;
    for (int64_t i = 0; i < S; i += kChunk) acc += simd::sum(g.f32() + nc * S + i, size_t(std::min(kChunk, S - i)));
    rows[size_t(nc)] = acc;
  }
  Tensor out = Tensor::empty({C});
  for (int64_t c = 0; c < C; ++c) {
    double acc = 0;
    for (int64_t n = 0; n < N; ++n) acc += rows[size_t(n * C + c)];
    out.f32()[c] = float(acc);
  }
  return out;
}

}  // namespace pigment::ops
