// 2-D convolution (groups = 1). ref::: direct loops over output pixels. Fast: oneDNN convolution on blocked
// (nChw16c) activations — reordered in and out per call — with the weights reordered once into a WeightCache,
// bias and an optional residual sum fused; Winograd for 3x3 stride-1 where it pays (see ops.h).
#include <atomic>
#include <cstring>

#include "ops/autograd_ops.h"
#include "ops/conv2d_narrow.h"
#include "ops/conv2d_pointwise.h"
#include "ops/fast_products.h"
#include "ops/int8_products.h"
#include "ops/onednn.h"
#include "ops/profile.h"
#include "ops/reference.h"

namespace pigment::ops {

namespace {
struct ConvShape {
  int64_t N, C, H, W, O, kh, kw, Ho, Wo;
};
ConvShape check_conv(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p) {
  PIG_CHECK(x.ndim() == 4 && w.ndim() == 4, "conv2d: expected x [N,C,H,W] and w [O,C,kh,kw], got ",
            shape_str(x.shape()), " and ", shape_str(w.shape()));
  ConvShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(2), w.dim(3), 0, 0};
  PIG_CHECK(w.dim(1) == s.C, "conv2d: input has ", s.C, " channels, weight ", shape_str(w.shape()), " expects ",
            w.dim(1));
  PIG_CHECK(p.stride >= 1, "conv2d: stride must be positive, got ", p.stride);
  PIG_CHECK(p.pad_top >= 0 && p.pad_left >= 0 && p.pad_bottom >= 0 && p.pad_right >= 0,
            "conv2d: padding must not be negative");
  s.Ho = (s.H + p.pad_top + p.pad_bottom - s.kh) / p.stride + 1;
  s.Wo = (s.W + p.pad_left + p.pad_right - s.kw) / p.stride + 1;
  PIG_CHECK(s.H + p.pad_top + p.pad_bottom >= s.kh && s.W + p.pad_left + p.pad_right >= s.kw && s.Ho > 0 && s.Wo > 0,
            "conv2d: output would be empty for input ", shape_str(x.shape()), " and kernel ", shape_str(w.shape()));
  if (bias) PIG_CHECK(bias->numel() == s.O, "conv2d: bias has ", bias->numel(), " elements, expected ", s.O);
  return s;
}
}  // namespace

namespace ref {
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, Conv2dParams p) {
  const ConvShape s = check_conv(x, w, bias, p);
  const int64_t N = s.N, C = s.C, H = s.H, W = s.W, O = s.O, kh = s.kh, kw = s.kw, Ho = s.Ho, Wo = s.Wo;
  Tensor xf = x.as_f32(), wf = w.as_f32();
  Tensor bf = bias ? bias->as_f32() : Tensor();
  Tensor y = Tensor::empty({N, O, Ho, Wo});
  const float* X = xf.f32();
  const float* Wt = wf.f32();
  float* Y = y.f32();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      float* yo = Y + (n * O + o) * Ho * Wo;
      float b0 = bias ? bf.f32()[o] : 0.f;
      for (int64_t i = 0; i < Ho * Wo; ++i) yo[i] = b0;
      for (int64_t c = 0; c < C; ++c) {
        const float* xc = X + (n * C + c) * H * W;
        for (int64_t ky = 0; ky < kh; ++ky)
          for (int64_t kx = 0; kx < kw; ++kx) {
            float wv = Wt[((o * C + c) * kh + ky) * kw + kx];
            for (int64_t oy = 0; oy < Ho; ++oy) {
              int64_t iy = oy * p.stride + ky - p.pad_top;
              if (iy < 0 || iy >= H) continue;
              for (int64_t ox = 0; ox < Wo; ++ox) {
                int64_t ix = ox * p.stride + kx - p.pad_left;
                if (ix < 0 || ix >= W) continue;
                yo[oy * Wo + ox] += wv * xc[iy * W + ix];
              }
            }
          }
      }
    }
  return y;
}
}  // namespace ref

namespace {
using dnnl::memory;
using tag = memory::format_tag;
constexpr auto f32 = memory::data_type::f32;

std::atomic<int> g_default_algorithm{int(ConvAlgorithm::Auto)};

struct ConvPrimitive {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  bool fused_residual;
};

// Where oneDNN's Winograd kernels apply (3x3, stride 1, padding 1; few channels fall back to direct).
bool winograd_applies(const ConvShape& s, const Conv2dParams& p) {
  return s.kh == 3 && s.kw == 3 && p.stride == 1 && p.pad_top == 1 && p.pad_left == 1 && p.pad_bottom == 1 &&
         p.pad_right == 1;
}

bool winograd_auto(const ConvShape& s, const Conv2dParams& p) {
  return winograd_applies(s, p) && onednn::auto_picks_winograd(s.C, s.O, s.Ho * s.Wo);
}

std::shared_ptr<ConvPrimitive> make_conv(const ConvShape& s, const Conv2dParams& p, bool bias, bool residual,
                                         bool winograd) {
  const memory::desc x_any({s.N, s.C, s.H, s.W}, f32, tag::any), w_any({s.O, s.C, s.kh, s.kw}, f32, tag::any),
      y_any({s.N, s.O, s.Ho, s.Wo}, f32, tag::any), b_md({s.O}, f32, tag::x);
  const memory::dims strides{p.stride, p.stride}, pad_l{p.pad_top, p.pad_left}, pad_r{p.pad_bottom, p.pad_right};
  const auto alg = winograd ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
  const auto prop = dnnl::prop_kind::forward_inference;
  auto desc = bias ? dnnl::convolution_forward::desc(prop, alg, x_any, w_any, b_md, y_any, strides, pad_l, pad_r)
                   : dnnl::convolution_forward::desc(prop, alg, x_any, w_any, y_any, strides, pad_l, pad_r);
  bool fused = false;
  const auto pd = onednn::conv_primitive_desc(desc, residual, &fused);
  return std::make_shared<ConvPrimitive>(ConvPrimitive{pd, dnnl::convolution_forward(pd), fused});
}
}  // namespace

// Auto's choice, from measurements on SD shapes (docs/performance.md): Winograd is 2.2x faster from 32x32 outputs up
// and only ~1.25x at 16x16 and 8x8, where its weights (4x, resp. 1.8x, the plain ones) would cost gigabytes for the
// 1280-channel layers. With few channels it is slower: conv_in (< 16), and the 32- and 64-channel layers of small
// models (pigment's emoji VAE at 64x64, batch 16, AMD EPYC: 32->32 Winograd ran at a seventh of direct's rate).
bool onednn::auto_picks_winograd(int64_t in_channels, int64_t out_channels, int64_t out_pixels) {
  return in_channels >= 128 && out_channels >= 128 && out_pixels >= 32 * 32;
}

void set_default_conv_algorithm(ConvAlgorithm a) { g_default_algorithm = int(a); }
ConvAlgorithm default_conv_algorithm() { return ConvAlgorithm(g_default_algorithm.load()); }

namespace {
std::string conv_key(const ConvShape& s, const Conv2dParams& p, bool bias, bool residual, bool wino) {
  return onednn::conv_key("conv", s.N, s.C, s.H, s.W, s.O, s.kh, s.kw, p) + "|" + std::to_string(bias) +
         std::to_string(residual) + std::to_string(wino);
}

// Runs `prim` on s.N images: x, y and residual are plain NCHW float32 (residual may be null).
void run_conv(const ConvPrimitive& prim, const ConvShape& s, const float* x, float* y, const float* residual,
              const dnnl::memory& w_mem, const dnnl::memory* b_mem) {
  const auto& pd = prim.pd;
  auto& eng = onednn::engine();
  auto& strm = onednn::stream();
  const memory::desc x_plain({s.N, s.C, s.H, s.W}, f32, tag::nchw), y_plain({s.N, s.O, s.Ho, s.Wo}, f32, tag::nchw);
  memory x_user(x_plain, eng, const_cast<float*>(x)), y_user(y_plain, eng, y);
  memory x_mem = x_user, y_mem = y_user;
  std::shared_ptr<void> x_buf, y_buf;
  if (pd.src_desc() != x_plain) {
    x_mem = onednn::work_memory(pd.src_desc(), x_buf);
    dnnl::reorder(x_user, x_mem).execute(strm, x_user, x_mem);
  }
  const bool blocked_out = pd.dst_desc() != y_plain;
  if (blocked_out) y_mem = onednn::work_memory(pd.dst_desc(), y_buf);
  if (residual && prim.fused_residual) {  // the sum post-op adds to what dst holds
    memory r_user(y_plain, eng, const_cast<float*>(residual));
    dnnl::reorder(r_user, y_mem).execute(strm, r_user, y_mem);
  }
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, x_mem}, {DNNL_ARG_WEIGHTS, w_mem}, {DNNL_ARG_DST, y_mem}};
  if (b_mem) args[DNNL_ARG_BIAS] = *b_mem;
  args[DNNL_ARG_SCRATCHPAD] = onednn::scratchpad(pd.scratchpad_desc());
  prim.prim.execute(strm, args);
  if (blocked_out) dnnl::reorder(y_mem, y_user).execute(strm, y_mem, y_user);
  strm.wait();
}
}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, Conv2dParams p, const Conv2dOptions& opt) {
  if (autograd::any_needs_grad({&x, &w, bias, opt.residual})) return recorded::conv2d(x, w, bias, p, opt);
  const ConvShape s = check_conv(x, w, bias, p);
  const Shape out_shape{s.N, s.O, s.Ho, s.Wo};
  if (opt.residual)
    PIG_CHECK(opt.residual->shape() == out_shape, "conv2d: residual ", shape_str(opt.residual->shape()),
              " does not match the output ", shape_str(out_shape));
  if (s.N == 0 || s.O == 0 || s.C == 0 || s.H == 0 || s.W == 0) {  // degenerate: nothing for oneDNN to do
    Tensor y = ref::conv2d(x, w, bias, p);
    if (opt.residual) add_inplace(y, *opt.residual);
    return y;
  }
  const ConvAlgorithm algo = opt.algorithm == ConvAlgorithm::Auto ? default_conv_algorithm() : opt.algorithm;
  const bool winograd = algo == ConvAlgorithm::Winograd ? winograd_applies(s, p)
                        : algo == ConvAlgorithm::Auto   ? winograd_auto(s, p)
                                                        : false;
  if (Tensor qy; int8::conv2d(x, w, bias, p, opt, qy)) return qy;  // Precision::Int8 (ops/int8_products.h)
  if (Tensor fy; fast::conv2d(x, w, bias, p, opt, winograd, fy)) return fy;  // Precision::Fast (ops/precision.h)
  if (Tensor py; conv2d_pointwise(x, w, bias, p, opt, py)) return py;  // 1x1: a matrix product (conv2d_pointwise.h)
  if (Tensor ny; conv2d_narrow(x, w, bias, p, opt, ny)) return ny;  // 3x3 to at most 4 channels (conv2d_narrow.h)
  const bool has_res = opt.residual != nullptr;
  std::shared_ptr<ConvPrimitive> prim;
  // Winograd runs one image at a time: oneDNN's F(2,3) kernel splits a batch across threads in a way that changes
  // the rounding with the thread count; per image it does not.
  ConvShape run_shape = s;
  profile::Scope prof(
      [&] {
        return "conv2d " + std::to_string(s.kh) + "x" + std::to_string(s.kw) + (p.stride > 1 ? " s2" : "") +
               (winograd ? " wino " : " ") + std::to_string(s.C) + "->" + std::to_string(s.O) + " @" +
               std::to_string(s.Ho) + "x" + std::to_string(s.Wo) + " N" + std::to_string(s.N);
      },
      2.0 * double(s.N * s.O * s.Ho * s.Wo) * double(s.C * s.kh * s.kw));
  if (winograd) {
    run_shape.N = 1;
    prim = onednn::cached<ConvPrimitive>(conv_key(run_shape, p, bias, has_res, true),
                                         [&]() -> std::shared_ptr<ConvPrimitive> {
                                           try {
                                             return make_conv(run_shape, p, bias != nullptr, has_res, true);
                                           } catch (const dnnl::error&) {
                                             return nullptr;  // no Winograd kernel for this shape: remembered
                                           }
                                         });
  }
  if (!prim) {
    run_shape = s;
    prim = onednn::cached<ConvPrimitive>(conv_key(s, p, bias, has_res, false),
                                         [&] { return make_conv(s, p, bias != nullptr, has_res, false); });
  }
  const memory::desc w_plain({s.O, s.C, s.kh, s.kw}, f32, tag::oihw), b_md({s.O}, f32, tag::x);
  const onednn::PreparedWeight w_prep = onednn::prepared(opt.cache, w, w_plain, prim->pd.weights_desc());
  const memory& w_mem = w_prep.mem;
  onednn::PreparedWeight b_prep;
  if (bias)
    b_prep = bias->dtype() == DType::F32
                 ? onednn::PreparedWeight{memory(b_md, onednn::engine(), const_cast<void*>(bias->raw())), nullptr}
                 : onednn::prepared(opt.cache, *bias, b_md, b_md);
  const memory& b_mem = b_prep.mem;
  Tensor xf = x.as_f32();
  Tensor rf = has_res ? opt.residual->as_f32() : Tensor();
  Tensor y = Tensor::empty(out_shape);
  const int64_t in_img = s.C * s.H * s.W, out_img = s.O * s.Ho * s.Wo;
  for (int64_t n = 0; n < s.N; n += run_shape.N)
    run_conv(*prim, run_shape, xf.f32() + n * in_img, y.f32() + n * out_img, has_res ? rf.f32() + n * out_img : nullptr,
             w_mem, bias ? &b_mem : nullptr);
  if (has_res && !prim->fused_residual) add_inplace(y, rf);
  return y;
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, Conv2dParams p) {
  return conv2d(x, w, bias, p, Conv2dOptions{});
}

}  // namespace pigment::ops
