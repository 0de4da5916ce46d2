// Precision::Int8 linear layers and convolutions (see int8_products.h): oneDNN's s8 × s8 → s32 matmul and direct
// convolution, with the quantisation of the inputs before and the dequantisation (scales, bias, residual) after them
// done here, so that the integer sums are the only thing oneDNN computes and the scalar twins reproduce its bits.
// Quantisation and dequantisation run AVX-512 loops (the int8 path exists only on CPUs with AVX-512 VNNI or AMX) that
// give the scalar loops' bits: the same products and sums in the same order, rounding to nearest even as lrintf.
#include "ops/int8_products.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "core/allocator.h"
#include "core/cpu_isa.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/file_pages.h"
#include "ops/conv_im2col.h"
#include "ops/isa_cap.h"
#include "ops/onednn.h"
#include "ops/precision.h"
#include "ops/profile.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PIG_INT8_SIMD 1
#define PIG_INT8_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#endif

namespace pigment::ops::int8 {
namespace {
using dnnl::memory;
using tag = memory::format_tag;

constexpr int64_t kMinK = 64;

// y[m, n] = acc · (sx[m] · sw[n]) + b[n] + res[m, n] — one formula for the kernels and the twins.
inline float dequant(int32_t acc, float sx, float sw, const float* b, int64_t n, const float* res) {
  float v = float(acc) * (sx * sw);
  if (b) v += b[n];
  if (res) v += *res;
  return v;
}

// The AVX-512 loops are used where the int8 path runs (vector_loops()); the scalar ones elsewhere and for the tail.
#if PIG_INT8_SIMD
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (their _mm*_undefined_*)
#pragma GCC diagnostic ignored "-Wuninitialized"
PIG_INT8_TARGET float amax_avx512(const float* r, int64_t n) {
  __m512 m = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(r + k)));
  float a = _mm512_reduce_max_ps(m);
  for (; k < n; ++k) a = std::max(a, std::fabs(r[k]));
  return a;
}
template <int Offset, typename Out>
PIG_INT8_TARGET void quantize_avx512(const float* r, int64_t n, float inv, Out* o) {
  const __m512 vinv = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-127.f), hi = _mm512_set1_ps(127.f);
  const __m512i off = _mm512_set1_epi32(Offset);
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_loadu_ps(r + k), vinv), lo), hi);
    const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), off);  // nearest even, as lrintf
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + k), _mm512_cvtepi32_epi8(q));
  }
  for (; k < n; ++k) o[k] = Out(int(std::lrintf(std::clamp(r[k] * inv, -127.f, 127.f))) + Offset);
}
// min and max of r[0, n), into *lo and *hi.
PIG_INT8_TARGET void minmax_avx512(const float* r, int64_t n, float* lo, float* hi) {
  __m512 mn = _mm512_set1_ps(*lo), mx = _mm512_set1_ps(*hi);
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512 v = _mm512_loadu_ps(r + k);
    mn = _mm512_min_ps(mn, v);
    mx = _mm512_max_ps(mx, v);
  }
  float a = _mm512_reduce_min_ps(mn), b = _mm512_reduce_max_ps(mx);
  for (; k < n; ++k) a = std::min(a, r[k]), b = std::max(b, r[k]);
  *lo = a, *hi = b;
}
// o[k] = clamp(lrint(r[k] · inv) + zp, 0, 255)
PIG_INT8_TARGET void quantize_u8_avx512(const float* r, int64_t n, float inv, int32_t zp, uint8_t* o) {
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i vzp = _mm512_set1_epi32(zp), zero = _mm512_setzero_si512(), top = _mm512_set1_epi32(255);
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(r + k), vinv)), vzp);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + k),
                     _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(q, zero), top)));
  }
  for (; k < n; ++k) o[k] = uint8_t(std::clamp(int(std::lrintf(r[k] * inv)) + zp, 0, 255));
}
// out[n] = dequant(acc[n] - 128·wsum[n], sx, sw[n], b, n, res + n) for n < N (wsum, b, res may be null). The tail
// runs masked: a scalar tail compiled for this target could become a fused multiply-add, other bits than the twin's.
PIG_INT8_TARGET void dequant_row_avx512(const int32_t* acc, const int32_t* wsum, float sx, const float* sw,
                                        const float* b, const float* res, float* out, int64_t N) {
  // The _round_ forms are separate instructions that the compiler cannot fuse into a multiply-add (GCC contracts
  // the plain _mm512_mul_ps/_mm512_add_ps, which it implements as vector arithmetic).
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512 vsx = _mm512_set1_ps(sx);
  for (int64_t n = 0; n < N; n += 16) {
    const __mmask16 m = N - n >= 16 ? __mmask16(0xffff) : __mmask16((1u << (N - n)) - 1);
    __m512i a = _mm512_maskz_loadu_epi32(m, acc + n);
    if (wsum) a = _mm512_sub_epi32(a, _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m, wsum + n), 7));
    const __m512 scale = _mm512_mul_round_ps(vsx, _mm512_maskz_loadu_ps(m, sw + n), kNearest);
    __m512 v = _mm512_mul_round_ps(_mm512_cvtepi32_ps(a), scale, kNearest);
    if (b) v = _mm512_add_round_ps(v, _mm512_maskz_loadu_ps(m, b + n), kNearest);
    if (res) v = _mm512_add_round_ps(v, _mm512_maskz_loadu_ps(m, res + n), kNearest);
    _mm512_mask_storeu_ps(out + n, m, v);
  }
}
#pragma GCC diagnostic pop
#endif

bool vector_loops() {
#if PIG_INT8_SIMD
  static const bool has = cpu_has(Isa::Avx512Vnni);  // implies AVX-512 F/BW/DQ/VL on every CPU that has it
  return has;
#else
  return false;
#endif
}

float row_amax(const float* r, int64_t n, bool simd) {
#if PIG_INT8_SIMD
  if (simd && vector_loops()) return amax_avx512(r, n);
#endif
  float a = 0;
  for (int64_t k = 0; k < n; ++k) a = std::max(a, std::fabs(r[k]));
  return a;
}
template <int Offset, typename Out>
void quantize_span(const float* r, int64_t n, float inv, Out* o, bool simd) {
#if PIG_INT8_SIMD
  if (simd && vector_loops()) return quantize_avx512<Offset>(r, n, inv, o);
#endif
  for (int64_t k = 0; k < n; ++k) o[k] = Out(int(std::lrintf(std::clamp(r[k] * inv, -127.f, 127.f))) + Offset);
}
void dequant_row(const int32_t* acc, const int32_t* wsum, float sx, const float* sw, const float* b, const float* res,
                 float* out, int64_t N) {
#if PIG_INT8_SIMD
  if (vector_loops()) return dequant_row_avx512(acc, wsum, sx, sw, b, res, out, N);
#endif
  for (int64_t n = 0; n < N; ++n)
    out[n] = dequant(acc[n] - (wsum ? 128 * wsum[n] : 0), sx, sw[n], b, n, res ? res + n : nullptr);
}

// Rows of K split into chunks of kChunk, so that a few long rows (a convolution's images) spread over the threads
// too: f(m, k, n, i) for row m's elements [k, k + n), chunk i of rows · chunk_count(K). Max and min are exact, so the
// quantisers' results do not depend on the split.
constexpr int64_t kChunk = 16384;
int64_t chunk_count(int64_t K) { return (K + kChunk - 1) / kChunk; }
template <typename F>
void for_each_chunk(int64_t rows, int64_t K, F&& f) {
  const int64_t chunks = chunk_count(K);
#pragma omp parallel for collapse(2) schedule(static) if (rows * K > (int64_t(1) << 16))
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t c = 0; c < chunks; ++c) f(m, c * kChunk, std::min(K - c * kChunk, kChunk), size_t(m * chunks + c));
}

// Per-row symmetric quantisation into q (rows × K) and scale (rows); Offset 128 stores q + 128 as unsigned bytes
// (VNNI multiplies unsigned by signed bytes: oneDNN's signed-input matmul kernels are several times slower).
// simd: the AVX-512 loops where available (the kernels), else the scalar ones (the twins' quantize_rows).
template <int Offset, typename Out>
void quantize_into(const float* x, int64_t rows, int64_t K, Out* q, float* scale, bool simd) {
  const int64_t chunks = chunk_count(K);
  std::vector<float> amax(size_t(rows * chunks), 0.f);
  for_each_chunk(rows, K, [&](int64_t m, int64_t k, int64_t n, size_t i) {
    amax[i] = row_amax(x + m * K + k, n, simd);
  });
  for (int64_t m = 0; m < rows; ++m) {
    float a = 0;
    for (int64_t c = 0; c < chunks; ++c) a = std::max(a, amax[size_t(m * chunks + c)]);
    scale[m] = a > 0 ? a / 127.f : 1.f;
  }
  for_each_chunk(rows, K, [&](int64_t m, int64_t k, int64_t n, size_t) {
    quantize_span<Offset>(x + m * K + k, n, 1.f / scale[m], q + m * K + k, simd);
  });
}

void minmax_span(const float* r, int64_t n, float* lo, float* hi, bool simd) {
#if PIG_INT8_SIMD
  if (simd && vector_loops()) return minmax_avx512(r, n, lo, hi);
#endif
  for (int64_t k = 0; k < n; ++k) *lo = std::min(*lo, r[k]), *hi = std::max(*hi, r[k]);
}
void quantize_u8_span(const float* r, int64_t n, float inv, int32_t zp, uint8_t* o, bool simd) {
#if PIG_INT8_SIMD
  if (simd && vector_loops()) return quantize_u8_avx512(r, n, inv, zp, o);
#endif
  for (int64_t k = 0; k < n; ++k) o[k] = uint8_t(std::clamp(int(std::lrintf(r[k] * inv)) + zp, 0, 255));
}

// Per-row asymmetric quantisation (see quantize_rows_asymmetric), chunked over the threads as quantize_into.
void quantize_asym_into(const float* x, int64_t rows, int64_t K, uint8_t* q, float* scale, int32_t* zero_point,
                        bool simd) {
  const int64_t chunks = chunk_count(K);
  std::vector<float> lo(size_t(rows * chunks), 0.f), hi(size_t(rows * chunks), 0.f);  // 0 is always in the range
  for_each_chunk(rows, K, [&](int64_t m, int64_t k, int64_t n, size_t i) {
    minmax_span(x + m * K + k, n, &lo[i], &hi[i], simd);
  });
  for (int64_t m = 0; m < rows; ++m) {
    float a = 0, b = 0;
    for (int64_t c = 0; c < chunks; ++c) a = std::min(a, lo[size_t(m * chunks + c)]), b = std::max(b, hi[size_t(m * chunks + c)]);
    scale[m] = b > a ? (b - a) / 255.f : 1.f;
    zero_point[m] = std::clamp(int(std::lrintf(-a / scale[m])), 0, 255);
  }
  for_each_chunk(rows, K, [&](int64_t m, int64_t k, int64_t n, size_t) {
    quantize_u8_span(x + m * K + k, n, 1.f / scale[m], zero_point[m], q + m * K + k, simd);
  });
}

// A weight quantised per output channel, in a primitive's layout, with its scales and row sums.
struct Int8Weight {
  std::shared_ptr<void> buf;  // the s8 data (from the tensor pool: huge pages, no fault per 4 KiB)
  memory mem;                 // over buf, in the primitive's layout
  std::vector<float> scale;   // per output channel
  std::vector<int32_t> sum;   // Σ_k q_w[n, k], per output channel (the u8 inputs' offset of 128 times it is removed)
};
using Int8WeightPtr = std::shared_ptr<const Int8Weight>;
struct WeightEntry : onednn::PreparedKey {
  Int8WeightPtr weight;
};
struct Int8Weights {
  std::mutex mu;
  std::unordered_multimap<const void*, WeightEntry> map;
};
Int8Weights& weights() {
  static Int8Weights* w = new Int8Weights;  // never destroyed, as the other weight caches
  return *w;
}

// w (f32, f16 or bf16; first dimension the output channels, the rest flattened) quantised row by row, each row
// widened to float32 in a per-thread buffer (no float32 copy of the whole weight), with quantize_rows' bits; the
// s8 rows as `plain` describes them reordered into `want`.
Int8WeightPtr quantize_weight(const Tensor& w, const memory::desc& plain, const memory::desc& want) {
  const int64_t N = w.dim(0), K = N ? w.numel() / N : 0;
  auto out = std::make_shared<Int8Weight>();
  out->scale.resize(size_t(N));
  out->sum.resize(size_t(N));
  void* qp = nullptr;
  const std::shared_ptr<void> q_hold = onednn::weight_scratch(size_t(N * K), &qp);
  auto* q = static_cast<int8_t*>(qp);
  const auto* src = static_cast<const char*>(w.raw());
  const size_t row_bytes = size_t(K) * dtype_size(w.dtype());
  onednn::map_released_pages(w);
#pragma omp parallel
  {
    std::vector<float> row(static_cast<size_t>(K));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const float* r = row.data();
      if (w.dtype() == DType::F32)
        r = reinterpret_cast<const float*>(src + size_t(n) * row_bytes);
      else
        convert_to_f32(w.dtype(), src + size_t(n) * row_bytes, row.data(), size_t(K));
      const float a = row_amax(r, K, true);
      const float sc = a > 0 ? a / 127.f : 1.f;
      int8_t* qr = q + n * K;
      quantize_span<0>(r, K, 1.f / sc, qr, true);
      int32_t t = 0;
      for (int64_t k = 0; k < K; ++k) t += qr[k];
      out->scale[size_t(n)] = sc;
      out->sum[size_t(n)] = t;
    }
  }
  out->buf = allocate(want.get_size());
  out->mem = memory(want, onednn::engine(), out->buf.get());
  memory q_mem(plain, onednn::engine(), q);
  dnnl::reorder(q_mem, out->mem).execute(onednn::stream(), q_mem, out->mem);
  onednn::stream().wait();
  return out;
}

std::atomic<bool> g_keep{true};  // set_keep_weights

// w quantised into the layout `want` (see quantize_weight): kept, or for views without an owner made per call. A
// kept weight's file pages (a memory-mapped checkpoint) are given back: they are not read again.
Int8WeightPtr prepared(const Tensor& w, const memory::desc& plain, const memory::desc& want) {
  if (!w.owner()) return quantize_weight(w, plain, want);
  Int8Weights& c = weights();
  if (!g_keep.load()) {  // low-memory mode: quantised per call, nothing kept, the file pages given back after use
    {
      std::lock_guard<std::mutex> lock(c.mu);
      c.map.clear();
    }
    Int8WeightPtr made = quantize_weight(w, plain, want);
    drop_file_pages(w.raw(), w.nbytes());
    return made;
  }
  const uint64_t fp = onednn::weight_fingerprint(w);
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto range = c.map.equal_range(w.raw());
    for (auto it = range.first; it != range.second;) {
      const WeightEntry& e = it->second;
      if (e.stale_for(w, fp)) {
        it = c.map.erase(it);  // a freed weight's memory reused, or rewritten in place
        continue;
      }
      if (e.serves(w, want)) return e.weight;
      ++it;
    }
  }
  Int8WeightPtr made = quantize_weight(w, plain, want);
  drop_file_pages(w.raw(), w.nbytes());
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto it = c.map.begin(); it != c.map.end();)  // the copies of freed models' weights go with them
    it = it->second.owner.expired() ? c.map.erase(it) : std::next(it);
  c.map.emplace(w.raw(), WeightEntry{{w.owner(), w.shape(), w.dtype(), fp, want}, made});
  return made;
}

bool vnni_impl(const char* impl) {
  return std::strstr(impl, "vnni") != nullptr || std::strstr(impl, "amx") != nullptr;
}
}  // namespace

std::atomic<bool> g_enabled{true};

bool available() {
  static const bool cpu = [] {
    apply_isa_cap();
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    return isa >= dnnl::cpu_isa::avx512_core_vnni && cpu_has(Isa::Avx512Vnni);
  }();
  return cpu && g_enabled;
}
bool set_enabled(bool on) { return g_enabled.exchange(on); }

bool set_keep_weights(bool on) { return g_keep.exchange(on); }
size_t kept_weights() {
  Int8Weights& c = weights();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.map.size();
}

Quantized quantize_rows(const float* x, int64_t rows, int64_t K) {
  Quantized r;
  r.q.resize(size_t(rows * K));
  r.scale.resize(size_t(rows));
  quantize_into<0>(x, rows, K, r.q.data(), r.scale.data(), false);
  return r;
}

QuantizedAsymmetric quantize_rows_asymmetric(const float* x, int64_t rows, int64_t K) {
  QuantizedAsymmetric r;
  r.q.resize(size_t(rows * K));
  r.scale.resize(size_t(rows));
  r.zero_point.resize(size_t(rows));
  quantize_asym_into(x, rows, K, r.q.data(), r.scale.data(), r.zero_point.data(), false);
  return r;
}

Tensor reference_linear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* residual) {
  const int64_t K = w.dim(1), N = w.dim(0), M = x.numel() / K;
  Tensor xf = x.as_f32(), wf = w.as_f32();
  const Quantized qx = quantize_rows(xf.f32(), M, K), qw = quantize_rows(wf.f32(), N, K);
  Tensor bf = bias ? bias->as_f32() : Tensor(), rf = residual ? residual->as_f32() : Tensor();
  Shape os = x.shape();
  os.back() = N;
  Tensor y = Tensor::empty(os);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int32_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += int32_t(qx.q[size_t(m * K + k)]) * int32_t(qw.q[size_t(n * K + k)]);
      y.f32()[m * N + n] = dequant(acc, qx.scale[size_t(m)], qw.scale[size_t(n)], bias ? bf.f32() : nullptr, n,
                                   residual ? rf.f32() + m * N + n : nullptr);
    }
  return y;
}

void forget(const Tensor& w) {
  Int8Weights& c = weights();
  std::lock_guard<std::mutex> lock(c.mu);
  c.map.erase(w.raw());
}

bool linear(const Tensor& x, const Tensor& w, const Tensor* bias, const LinearOptions& opt, Tensor& y) {
  if (precision() != Precision::Int8 || !available() || opt.activation != Activation::None) return false;
  const int64_t K = w.dim(1), N = w.dim(0), M = K ? x.numel() / K : 0;
  if (M == 0 || N == 0 || K < kMinK) return false;
  const memory::desc src_md({M, K}, memory::data_type::u8, tag::ab), dst_md({M, N}, memory::data_type::s32, tag::ab);
  const std::string key = "int8-linear|" + std::to_string(M) + "," + std::to_string(K) + "," + std::to_string(N);
  auto p = onednn::cached<onednn::Matmul>(key, [&] {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const memory::desc w_any({K, N}, memory::data_type::s8, tag::any);
    return onednn::make_matmul(dnnl::matmul::desc(src_md, w_any, dst_md), attr, vnni_impl);
  });
  if (!p) return false;
  profile::Scope prof(
      [&] { return "int8 linear " + std::to_string(K) + "->" + std::to_string(N) + " M" + std::to_string(M); },
      2.0 * double(M) * double(N) * double(K));
  Tensor xf = x.as_f32();
  // Work buffers left uninitialised (every element is written before it is read).
  // The quantised inputs in pool memory; the integer sums written into y's own memory and dequantised in place.
  std::shared_ptr<void> q_buf;
  const memory src = onednn::work_memory(src_md, q_buf);
  std::vector<float> sx(static_cast<size_t>(M));
  quantize_into<128>(xf.f32(), M, K, static_cast<uint8_t*>(src.get_data_handle()), sx.data(), true);
  // q is [N, K] row-major: as the matmul's [K, N] weights that is format ba.
  const Int8WeightPtr pw = prepared(w, memory::desc({K, N}, memory::data_type::s8, tag::ba), p->pd.weights_desc());
  const float* sw = pw->scale.data();
  const int32_t* wsum = pw->sum.data();
  Shape os = x.shape();
  os.back() = N;
  y = Tensor::empty(os);
  auto* acc = static_cast<int32_t*>(y.raw());
  const memory dst(dst_md, onednn::engine(), acc);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, pw->mem}, {DNNL_ARG_DST, dst}};
  args[DNNL_ARG_SCRATCHPAD] = onednn::scratchpad(p->pd.scratchpad_desc());
  p->prim.execute(onednn::stream(), args);
  onednn::stream().wait();
  Tensor bf = bias ? bias->as_f32() : Tensor(), rf = opt.residual ? opt.residual->as_f32() : Tensor();
  const float* b = bias ? bf.f32() : nullptr;
  const float* res = opt.residual ? rf.f32() : nullptr;
  float* out = y.f32();
#pragma omp parallel for schedule(static) if (M * N > (int64_t(1) << 15))
  for (int64_t m = 0; m < M; ++m)
    dequant_row(acc + m * N, wsum, sx[size_t(m)], sw, b, res ? res + m * N : nullptr, out + m * N, N);
  return true;
}

namespace {
detail::ConvShape conv_shape(const Tensor& x, const Tensor& w, const Conv2dParams& p) {
  detail::ConvShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(2), w.dim(3), 0, 0};
  s.Ho = (s.H + p.pad_top + p.pad_bottom - s.kh) / p.stride + 1;
  s.Wo = (s.W + p.pad_left + p.pad_right - s.kw) / p.stride + 1;
  return s;
}
}  // namespace

Tensor reference_conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p,
                        const Tensor* residual) {
  const detail::ConvShape s = conv_shape(x, w, p);
  const int64_t img = s.C * s.H * s.W, K = s.C * s.kh * s.kw, P = s.Ho * s.Wo;
  Tensor xf = x.as_f32(), wf = w.as_f32();
  const QuantizedAsymmetric qx = quantize_rows_asymmetric(xf.f32(), s.N, img);
  const Quantized qw = quantize_rows(wf.f32(), s.O, K);
  Tensor bf = bias ? bias->as_f32() : Tensor(), rf = residual ? residual->as_f32() : Tensor();
  Tensor y = Tensor::empty({s.N, s.O, s.Ho, s.Wo});
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t o = 0; o < s.O; ++o)
      for (int64_t oy = 0; oy < s.Ho; ++oy)
        for (int64_t ox = 0; ox < s.Wo; ++ox) {
          int32_t acc = 0;
          for (int64_t c = 0; c < s.C; ++c)
            for (int64_t ky = 0; ky < s.kh; ++ky)
              for (int64_t kx = 0; kx < s.kw; ++kx) {
                const int64_t iy = oy * p.stride + ky - p.pad_top, ix = ox * p.stride + kx - p.pad_left;
                if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;  // zero padding: real zero
                acc += (int32_t(qx.q[size_t(n * img + (c * s.H + iy) * s.W + ix)]) - qx.zero_point[size_t(n)]) *
                       int32_t(qw.q[size_t(o * K + (c * s.kh + ky) * s.kw + kx)]);
              }
          const int64_t i = (n * s.O + o) * P + oy * s.Wo + ox;
          y.f32()[i] = dequant(acc, qx.scale[size_t(n)], qw.scale[size_t(o)], bias ? bf.f32() : nullptr, o,
                               residual ? rf.f32() + i : nullptr);
        }
  return y;
}

bool takes_conv(int64_t in_channels, int64_t out_channels, int64_t kernel_elements) {
  return precision() == Precision::Int8 && available() && in_channels >= 16 && out_channels > 4 &&
         kernel_elements > 1 && in_channels * kernel_elements >= kMinK;
}

bool conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p, const Conv2dOptions& opt,
            Tensor& y) {
  const detail::ConvShape s = conv_shape(x, w, p);
  if (!takes_conv(s.C, s.O, s.kh * s.kw)) return false;
  if (s.N == 0 || s.H == 0 || s.W == 0 || s.Ho <= 0 || s.Wo <= 0) return false;
  // One image per primitive call (see below), so the key has no batch size.
  const std::string key = onednn::conv_key("int8-conv", 1, s.C, s.H, s.W, s.O, s.kh, s.kw, p);
  auto prim = onednn::cached<onednn::Conv>(key, [&]() -> std::shared_ptr<onednn::Conv> {
    // One image at a time (each has its own scale and zero point: oneDNN takes one zero point per call), unsigned
    // inputs with the zero point given at run time (oneDNN removes it, padding counting as real zero), the integer
    // sums returned as they are; the scales are applied below.
    const memory::desc x_md({1, s.C, s.H, s.W}, memory::data_type::u8, tag::nhwc),
        w_any({s.O, s.C, s.kh, s.kw}, memory::data_type::s8, tag::any),
        y_md({1, s.O, s.Ho, s.Wo}, memory::data_type::s32, tag::nhwc);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, x_md,
                                      w_any, y_md, {p.stride, p.stride}, {p.pad_top, p.pad_left},
                                      {p.pad_bottom, p.pad_right});
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    return onednn::make_conv(d, attr, vnni_impl);
  });
  if (!prim) return false;
  profile::Scope prof(
      [&] {
        return "int8 conv2d " + std::to_string(s.kh) + "x" + std::to_string(s.kw) + (p.stride > 1 ? " s2 " : " ") +
               std::to_string(s.C) + "->" + std::to_string(s.O) + " @" + std::to_string(s.Ho) + "x" +
               std::to_string(s.Wo) + " N" + std::to_string(s.N);
      },
      2.0 * double(s.N * s.O * s.Ho * s.Wo) * double(s.C * s.kh * s.kw));
  auto& strm = onednn::stream();
  const int64_t img = s.C * s.H * s.W, out_img = s.O * s.Ho * s.Wo;
  // Inputs: a scale and zero point per image (asymmetric: most inputs follow a SiLU, whose range is mostly
  // positive), quantised in NCHW order, then laid out as the kernel wants (an exact reorder).
  Tensor xf = x.as_f32();
  std::shared_ptr<void> q_buf, x_buf, y_buf;
  const memory::desc q_plain({s.N, s.C, s.H, s.W}, memory::data_type::u8, tag::nchw),
      q_img({1, s.C, s.H, s.W}, memory::data_type::u8, tag::nchw);
  memory q_mem = onednn::work_memory(q_plain, q_buf);
  auto* q = static_cast<uint8_t*>(q_mem.get_data_handle());
  std::vector<float> sx(size_t(s.N));
  std::vector<int32_t> zp(size_t(s.N));
  quantize_asym_into(xf.f32(), s.N, img, q, sx.data(), zp.data(), true);
  const memory::desc& src_md = prim->pd.src_desc();
  const bool reorder_src = src_md != q_img;
  memory x_mem = reorder_src ? onednn::work_memory(src_md, x_buf) : memory();
  // The sums of all images, channels-last, one after the other.
  const memory::desc y_all({s.N, s.O, s.Ho, s.Wo}, memory::data_type::s32, tag::nhwc);
  const memory y_mem = onednn::work_memory(y_all, y_buf);
  auto* acc = static_cast<int32_t*>(y_mem.get_data_handle());
  const Int8WeightPtr pw = prepared(w, memory::desc({s.O, s.C, s.kh, s.kw}, memory::data_type::s8, tag::oihw),
                                    prim->pd.weights_desc());
  memory zp_mem({{1}, memory::data_type::s32, tag::x}, onednn::engine());
  for (int64_t n = 0; n < s.N; ++n) {
    memory q_n(q_img, onednn::engine(), q + n * img);
    if (reorder_src)
      dnnl::reorder(q_n, x_mem).execute(strm, q_n, x_mem);
    else
      x_mem = q_n;
    *static_cast<int32_t*>(zp_mem.get_data_handle()) = zp[size_t(n)];
    const memory y_n(prim->pd.dst_desc(), onednn::engine(), acc + n * out_img);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, x_mem}, {DNNL_ARG_WEIGHTS, pw->mem}, {DNNL_ARG_DST, y_n},
                                         {DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, zp_mem}};
    args[DNNL_ARG_SCRATCHPAD] = onednn::scratchpad(prim->pd.scratchpad_desc());
    prim->prim.execute(strm, args);
    strm.wait();
  }
  // Dequantised in place (the channels-last sums become float32 with scales and bias), laid out as NCHW by oneDNN's
  // reorder, then the residual added: the twin's order of operations.
  const float* sw = pw->scale.data();
  Tensor bf = bias ? bias->as_f32() : Tensor();
  const float* b = bias ? bf.f32() : nullptr;
  const int64_t P = s.Ho * s.Wo;
#pragma omp parallel for schedule(static) if (s.N * P * s.O > (int64_t(1) << 15))
  for (int64_t i = 0; i < s.N * P; ++i)
    dequant_row(acc + i * s.O, nullptr, sx[size_t(i / P)], sw, b, nullptr, reinterpret_cast<float*>(acc + i * s.O), s.O);
  y = Tensor::empty({s.N, s.O, s.Ho, s.Wo});
  memory t_mem(memory::desc({s.N, s.O, s.Ho, s.Wo}, memory::data_type::f32, tag::nhwc), onednn::engine(), acc),
      y_user(memory::desc({s.N, s.O, s.Ho, s.Wo}, memory::data_type::f32, tag::nchw), onednn::engine(), y.raw());
  dnnl::reorder(t_mem, y_user).execute(strm, t_mem, y_user);
  strm.wait();
  if (opt.residual) add_inplace(y, *opt.residual);
  return true;
}

}  // namespace pigment::ops::int8
