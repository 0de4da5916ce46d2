// Row-banded 3x3 convolutions (see conv2d_bands.h). The primitives mirror conv2d.cc's Winograd ones (tag::any
// activations and weights, user scratchpad, the residual as a sum post-op where the kernel takes it), with the
// padding of each band: {1, 0} for the first, {0, 0} inside, {0, 1} for the last.
#include "ops/autograd.h"
#include "ops/conv2d_bands.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/allocator.h"
#include "ops/fast_products.h"
#include "ops/onednn.h"
#include "ops/precision.h"
#include "ops/profile.h"

namespace pigment::ops {

namespace {
using dnnl::memory;
using tag = memory::format_tag;
constexpr auto f32 = memory::data_type::f32;
constexpr int64_t kTile = 4;  // F(4,3)'s output tile; a multiple of F(2,3)'s

size_t initial_band_bytes() {
  if (const char* e = std::getenv("PIGMENT_CONV_BAND_MB")) {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(e, &end, 10);
    PIG_CHECK(end && end != e && *end == 0, "PIGMENT_CONV_BAND_MB: expected a number of megabytes, got '", e, "'");
    return mb == 0 ? SIZE_MAX : size_t(mb) << 20;
  }
  // Measured on the SD VAE decode (docs/performance.md): 64 MiB bands are faster than larger ones (the band's work
  // stays in the last-level cache: 1024² decode 29.1 -> 19.3 s against 256 MiB, 512² ~9 % less CPU time) and than
  // smaller ones (32 MiB: each band re-reads the whole transformed weight; 1024² 27.7 s).
  return size_t(64) << 20;
}
std::atomic<size_t> g_band_bytes{initial_band_bytes()};

struct BandPrim {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  bool fused_residual = false;
};

// A Winograd primitive for one image of C x Hin x W input rows, padded pt rows above and pb below (and one column
// each side), or null where oneDNN has none. `make_prim` false: the descriptor only (for the whole-image check).
std::shared_ptr<BandPrim> make_band(int64_t C, int64_t Hin, int64_t W, int64_t O, int pt, int pb, bool bias,
                                    bool residual, bool make_prim) {
  const int64_t Ho = Hin + pt + pb - 2;
  const memory::desc x_any({1, C, Hin, W}, f32, tag::any), w_any({O, C, 3, 3}, f32, tag::any),
      y_any({1, O, Ho, W}, f32, tag::any), b_md({O}, f32, tag::x);
  const memory::dims strides{1, 1}, pad_l{pt, 1}, pad_r{pb, 1};
  const auto alg = dnnl::algorithm::convolution_winograd;
  const auto prop = dnnl::prop_kind::forward_inference;
  try {
    auto desc = bias ? dnnl::convolution_forward::desc(prop, alg, x_any, w_any, b_md, y_any, strides, pad_l, pad_r)
                     : dnnl::convolution_forward::desc(prop, alg, x_any, w_any, y_any, strides, pad_l, pad_r);
    bool fused = false;
    auto p = std::make_shared<BandPrim>();
    p->pd = onednn::conv_primitive_desc(desc, residual, &fused);
    if (make_prim) p->prim = dnnl::convolution_forward(p->pd);
    p->fused_residual = fused;
    return p;
  } catch (const dnnl::error&) {
  }
  return nullptr;
}

std::string band_key(const char* kind, int64_t C, int64_t Hin, int64_t W, int64_t O, int pt, int pb, bool bias,
                     bool residual) {
  std::string k = kind;
  for (int64_t v : {C, Hin, W, O, int64_t(pt), int64_t(pb), int64_t(bias), int64_t(residual)})
    k += std::to_string(v) + ",";
  return k;
}

std::shared_ptr<BandPrim> band_prim(int64_t C, int64_t Hin, int64_t W, int64_t O, int pt, int pb, bool bias,
                                    bool residual) {
  return onednn::cached<BandPrim>(band_key("conv-band|", C, Hin, W, O, pt, pb, bias, residual),
                                  [&] { return make_band(C, Hin, W, O, pt, pb, bias, residual, true); });
}

// Whether conv2d would run this convolution (one image of C x H x W, padding 1) with oneDNN's Winograd kernel: the
// fp32 products, the algorithm it picks (ConvAlgorithm::Auto's rule in conv2d.cc), and a kernel for the shape.
bool whole_is_winograd(int64_t C, int64_t H, int64_t W, int64_t O) {
  if (precision() == Precision::Reference) return false;
  bool winograd = false;
  switch (default_conv_algorithm()) {
    case ConvAlgorithm::Direct:
      break;
    case ConvAlgorithm::Winograd:
      winograd = true;
      break;
    case ConvAlgorithm::Auto:
      winograd = onednn::auto_picks_winograd(C, O, H * W);
      break;
  }
  return winograd && !fast::takes_conv(C, O, H * W, true);  // Precision::Fast's bf16 kernels take it whole
}

struct Plan {
  int64_t rows = 0;  // output rows per band (the last band may have fewer); 0: run the whole convolution
  std::shared_ptr<BandPrim> first, middle, last;
};

// Whether bands of `rows` output rows (the last one H mod rows, if not 0) get the kernel, weight layout and residual
// handling that the whole image gets.
bool bands_match_whole(const BandPrim& whole, int64_t C, int64_t H, int64_t W, int64_t O, int64_t rows, bool bias,
                       bool residual) {
  const int64_t bands = (H + rows - 1) / rows, last_rows = H - (bands - 1) * rows;
  std::vector<std::tuple<int64_t, int, int>> kinds{{rows + 1, 1, 0}, {last_rows + 1, 0, 1}};
  if (bands > 2) kinds.emplace_back(rows + 2, 0, 0);
  for (auto [hin, pt, pb] : kinds) {
    auto b = make_band(C, hin, W, O, pt, pb, bias, residual, false);
    if (!b || b->pd.impl_info_str() != whole.pd.impl_info_str() || b->pd.weights_desc() != whole.pd.weights_desc() ||
        b->fused_residual != whole.fused_residual)
      return false;
  }
  return true;
}

// Bands of at most `band_bytes` (estimated: Winograd's transformed input and output, 36/16 of each, the blocked
// copies, and the upsampled rows), a multiple of kTile rows: the tallest such bands for which oneDNN chooses the
// kernel and the weight layout it chooses for the whole image (its blocking depends on the size); and their
// primitives.
Plan plan(int64_t C, int64_t H, int64_t W, int64_t O, bool bias, bool residual, size_t band_bytes, bool upsampled) {
  Plan p;
  if (band_bytes == 0) band_bytes = g_band_bytes.load();
  if (band_bytes == SIZE_MAX || H < 2 * kTile || !whole_is_winograd(C, H, W, O)) return p;
  const double per_row = 4.0 * double(W) * (2.25 * double(C + O) + double(C) * (upsampled ? 2 : 1) + double(O));
  const int64_t max_rows = std::max<int64_t>(kTile, int64_t(double(band_bytes) / per_row) / kTile * kTile);
  if (max_rows >= H) return p;
  struct Choice {
    int64_t rows;
  };
  auto choice = onednn::cached<Choice>(band_key("conv-bands|", C, H, W, O, int(max_rows), 0, bias, residual), [&] {
    auto whole = make_band(C, H, W, O, 1, 1, bias, residual, false);
    int64_t rows = max_rows;
    for (; whole && rows >= kTile; rows -= kTile)
      if (bands_match_whole(*whole, C, H, W, O, rows, bias, residual)) break;
    return std::make_shared<Choice>(Choice{whole && rows >= kTile ? rows : 0});
  });
  const int64_t rows = choice->rows;
  if (rows == 0) return p;
  const int64_t bands = (H + rows - 1) / rows, last_rows = H - (bands - 1) * rows;
  p.first = band_prim(C, rows + 1, W, O, 1, 0, bias, residual);
  p.middle = bands > 2 ? band_prim(C, rows + 2, W, O, 0, 0, bias, residual) : nullptr;
  p.last = band_prim(C, last_rows + 1, W, O, 0, 1, bias, residual);
  if (!p.first || !p.last || (bands > 2 && !p.middle)) return p;
  p.rows = rows;
  return p;
}

// Nearest 2x upsampling of x's image n, rows [begin, end) of the result, into dst [C, end-begin, 2w].
void upsample_rows(const Tensor& x, int64_t n, int64_t begin, int64_t end, float* dst) {
  const int64_t C = x.dim(1), h = x.dim(2), w = x.dim(3), W = 2 * w, rows = end - begin;
  const float* src = x.f32() + n * C * h * w;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c)
    for (int64_t r = 0; r < rows; ++r) {
      const float* s = src + (c * h + (begin + r) / 2) * w;
      float* d = dst + (c * rows + r) * W;
      for (int64_t i = 0; i < w; ++i) d[2 * i] = d[2 * i + 1] = s[i];
    }
}

// The banded convolution of an input of C x H x W per image (x itself, or the 2x upsampling of x).
Tensor run_banded(const Tensor& x, bool upsampled, const Tensor& w, const Tensor* bias, const BandOptions& opt) {
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2) * (upsampled ? 2 : 1), W = x.dim(3) * (upsampled ? 2 : 1);
  const int64_t O = w.dim(0);
  const bool has_res = opt.residual != nullptr;
  const Plan pl = plan(C, H, W, O, bias != nullptr, has_res, opt.band_bytes, upsampled);
  if (pl.rows == 0) {
    Conv2dOptions co;
    co.residual = opt.residual;
    co.cache = opt.cache;
    return conv2d(upsampled ? upsample_nearest2x(x) : x, w, bias, Conv2dParams::same(1), co);
  }
  profile::Scope prof(
      [&] {
        return "conv2d 3x3 wino " + std::to_string(C) + "->" + std::to_string(O) + " @" + std::to_string(H) + "x" +
               std::to_string(W) + " N" + std::to_string(N) + (upsampled ? " (upsampled," : " (") + " bands of " +
               std::to_string(pl.rows) + ")";
      },
      2.0 * double(N * O * H * W) * double(C * 9));
  auto& eng = onednn::engine();
  auto& strm = onednn::stream();
  const memory::desc w_plain({O, C, 3, 3}, f32, tag::oihw), b_md({O}, f32, tag::x);
  const onednn::PreparedWeight w_prep = onednn::prepared(opt.cache, w, w_plain, pl.first->pd.weights_desc());
  onednn::PreparedWeight b_prep;
  if (bias)
    b_prep = bias->dtype() == DType::F32
                 ? onednn::PreparedWeight{memory(b_md, eng, const_cast<void*>(bias->raw())), nullptr}
                 : onednn::prepared(opt.cache, *bias, b_md, b_md);
  Tensor xf = x.as_f32();
  Tensor rf = has_res ? opt.residual->as_f32() : Tensor();
  PIG_CHECK(!has_res || rf.shape() == Shape({N, O, H, W}), "conv2d: residual ", shape_str(rf.shape()),
            " does not match the output ", shape_str({N, O, H, W}));
  Tensor y = Tensor::empty({N, O, H, W});

  // Work memory for one band at a time, sized for the largest: the blocked input and output, the upsampled rows.
  size_t src_bytes = 0, dst_bytes = 0;
  for (const auto& b : {pl.first, pl.middle, pl.last})
    if (b) src_bytes = std::max(src_bytes, b->pd.src_desc().get_size()), dst_bytes = std::max(dst_bytes, b->pd.dst_desc().get_size());
  std::shared_ptr<void> src_buf = allocate(src_bytes), dst_buf = allocate(dst_bytes);
  std::shared_ptr<void> up_buf = upsampled ? allocate(size_t(C) * size_t(pl.rows + 2) * size_t(W) * sizeof(float)) : nullptr;

  for (int64_t n = 0; n < N; ++n)
    for (int64_t r0 = 0; r0 < H; r0 += pl.rows) {
      const int64_t r1 = std::min(H, r0 + pl.rows);
      const BandPrim& b = r0 == 0 ? *pl.first : r1 == H ? *pl.last : *pl.middle;
      const int64_t in0 = std::max<int64_t>(0, r0 - 1), in1 = std::min(H, r1 + 1), hin = in1 - in0, hout = r1 - r0;
      // The input rows, as plain NCHW (a strided view of x, or the upsampled rows).
      memory::desc x_rows;
      void* x_ptr;
      if (upsampled) {
        upsample_rows(xf, n, in0, in1, static_cast<float*>(up_buf.get()));
        x_rows = memory::desc({1, C, hin, W}, f32, tag::nchw);
        x_ptr = up_buf.get();
      } else {
        x_rows = memory::desc({1, C, hin, W}, f32, memory::dims{C * H * W, H * W, W, 1});
        x_ptr = const_cast<float*>(xf.f32()) + n * C * H * W + in0 * W;
      }
      memory x_user(x_rows, eng, x_ptr), x_mem(b.pd.src_desc(), eng, src_buf.get());
      dnnl::reorder(x_user, x_mem).execute(strm, x_user, x_mem);
      // The output rows in place in y (and the residual's, for the sum post-op).
      const memory::desc y_rows({1, O, hout, W}, f32, memory::dims{O * H * W, H * W, W, 1});
      memory y_user(y_rows, eng, y.f32() + n * O * H * W + r0 * W), y_mem(b.pd.dst_desc(), eng, dst_buf.get());
      if (has_res && b.fused_residual) {
        memory r_user(y_rows, eng, const_cast<float*>(rf.f32()) + n * O * H * W + r0 * W);
        dnnl::reorder(r_user, y_mem).execute(strm, r_user, y_mem);
      }
      std::unordered_map<int, memory> args{{DNNL_ARG_SRC, x_mem}, {DNNL_ARG_WEIGHTS, w_prep.mem}, {DNNL_ARG_DST, y_mem}};
      if (bias) args[DNNL_ARG_BIAS] = b_prep.mem;
      args[DNNL_ARG_SCRATCHPAD] = onednn::scratchpad(b.pd.scratchpad_desc());
      b.prim.execute(strm, args);
      dnnl::reorder(y_mem, y_user).execute(strm, y_mem, y_user);
      strm.wait();
    }
  if (has_res && !pl.first->fused_residual) add_inplace(y, rf);
  return y;
}

void check_args(const Tensor& x, const Tensor& w, const Tensor* bias) {
  PIG_CHECK(x.ndim() == 4 && w.ndim() == 4 && w.dim(1) == x.dim(1) && w.dim(2) == 3 && w.dim(3) == 3,
            "conv3x3_banded: expected x [N, C, H, W] and w [O, C, 3, 3], got ", shape_str(x.shape()), " and ",
            shape_str(w.shape()));
  if (bias) PIG_CHECK(bias->numel() == w.dim(0), "conv3x3_banded: bias has ", bias->numel(), " elements, expected ", w.dim(0));
}
}  // namespace

void set_default_band_bytes(size_t bytes) { g_band_bytes = bytes ? bytes : SIZE_MAX; }
size_t default_band_bytes() { return g_band_bytes.load(); }

Tensor conv3x3_banded(const Tensor& x, const Tensor& w, const Tensor* bias, const BandOptions& options) {
  if (autograd::any_needs_grad({&x, &w, bias, options.residual})) {  // recorded as the whole convolution it equals
    Conv2dOptions o;
    o.residual = options.residual;
    o.cache = options.cache;
    return conv2d(x, w, bias, Conv2dParams::same(1), o);
  }
  check_args(x, w, bias);
  return run_banded(x, false, w, bias, options);
}

Tensor upsample2x_conv3x3_banded(const Tensor& x, const Tensor& w, const Tensor* bias, const BandOptions& options) {
  if (autograd::any_needs_grad({&x, &w, bias, options.residual})) {
    Conv2dOptions o;
    o.residual = options.residual;
    o.cache = options.cache;
    return conv2d(upsample_nearest2x(x), w, bias, Conv2dParams::same(1), o);
  }
  check_args(x, w, bias);
  return run_banded(x, true, w, bias, options);
}

int64_t conv3x3_band_rows(const Tensor& x, const Tensor& w, const Tensor* bias, const BandOptions& options,
                          bool upsampled) {
  check_args(x, w, bias);
  const int64_t s = upsampled ? 2 : 1;
  return plan(x.dim(1), x.dim(2) * s, x.dim(3) * s, w.dim(0), bias != nullptr, options.residual != nullptr,
              options.band_bytes, upsampled)
      .rows;
}

}  // namespace pigment::ops
