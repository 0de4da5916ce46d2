// Precision::Int8 linear layers (see int8_products.h): oneDNN's s8 × s8 → s32 matmul, with the quantisation of the
// inputs before and the dequantisation (scales, bias, residual) after it done here, so that the integer sums are the
// only thing oneDNN computes and the scalar twin reproduces its bits.
#include "ops/int8_products.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "core/cpu_isa.h"
#include "core/error.h"
#include "ops/isa_cap.h"
#include "ops/onednn.h"
#include "ops/precision.h"
#include "ops/profile.h"

namespace pigment::ops::int8 {
namespace {
using dnnl::memory;
using tag = memory::format_tag;

constexpr int64_t kMinK = 64;

// Per-row symmetric quantisation into q (rows × K) and scale (rows); Offset 128 stores q + 128 as unsigned bytes
// (VNNI multiplies unsigned by signed bytes: oneDNN's signed-input kernels are several times slower).
template <int Offset, typename Out>
void quantize_into(const float* x, int64_t rows, int64_t K, Out* q, float* scale) {
#pragma omp parallel for schedule(static) if (rows * K > (int64_t(1) << 16))
  for (int64_t m = 0; m < rows; ++m) {
    const float* r = x + m * K;
    float amax = 0;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(r[k]));
    const float s = amax > 0 ? amax / 127.f : 1.f;
    const float inv = 1.f / s;
    Out* o = q + m * K;
    for (int64_t k = 0; k < K; ++k) o[k] = Out(int(std::lrintf(std::clamp(r[k] * inv, -127.f, 127.f))) + Offset);
    scale[m] = s;
  }
}

// y[m, n] = acc · (sx[m] · sw[n]) + b[n] + res[m, n] — one formula for the kernel and the twin.
inline float dequant(int32_t acc, float sx, float sw, const float* b, int64_t n, const float* res) {
  float v = float(acc) * (sx * sw);
  if (b) v += b[n];
  if (res) v += *res;
  return v;
}

struct WeightEntry : onednn::PreparedKey {
  memory mem;                // s8 in the primitive's layout
  std::vector<float> scale;  // per output channel
  std::vector<int32_t> sum;  // Σ_k q_w[n, k], per output channel (the u8 inputs' offset of 128 times it is removed)
};
struct Int8Weights {
  std::mutex mu;
  std::unordered_multimap<const void*, WeightEntry> map;
};
Int8Weights& weights() {
  static Int8Weights* w = new Int8Weights;  // never destroyed, as the other weight caches
  return *w;
}

// The quantised weight (per output channel) in the layout `want`, with its scales and row sums; kept, or for views
// without an owner made per call.
struct PreparedInt8 {
  memory mem;
  std::vector<float> scale;
  std::vector<int32_t> sum;
};
PreparedInt8 prepared(const Tensor& w, const memory::desc& want) {
  const int64_t N = w.dim(0), K = w.dim(1);
  auto make = [&] {
    Tensor wf = w.as_f32();
    Quantized qw = quantize_rows(wf.f32(), N, K);
    std::vector<int32_t> sum(size_t(N), 0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k) sum[size_t(n)] += qw.q[size_t(n * K + k)];
    // q is [N, K] row-major: as the matmul's [K, N] weights that is format ba.
    memory plain(memory::desc({K, N}, memory::data_type::s8, tag::ba), onednn::engine(), qw.q.data());
    memory dst(want, onednn::engine());
    dnnl::reorder(plain, dst).execute(onednn::stream(), plain, dst);
    onednn::stream().wait();
    return PreparedInt8{dst, std::move(qw.scale), std::move(sum)};
  };
  if (!w.owner()) return make();
  Int8Weights& c = weights();
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
      if (e.serves(w, want)) return {e.mem, e.scale, e.sum};
      ++it;
    }
  }
  PreparedInt8 made = make();
  std::lock_guard<std::mutex> lock(c.mu);
  c.map.emplace(w.raw(), WeightEntry{{w.owner(), w.shape(), w.dtype(), fp, want}, made.mem, made.scale, made.sum});
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

Quantized quantize_rows(const float* x, int64_t rows, int64_t K) {
  Quantized r;
  r.q.resize(size_t(rows * K));
  r.scale.resize(size_t(rows));
  quantize_into<0>(x, rows, K, r.q.data(), r.scale.data());
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
  std::unique_ptr<uint8_t[]> qx(new uint8_t[size_t(M * K)]);
  std::unique_ptr<float[]> sx(new float[size_t(M)]);
  quantize_into<128>(xf.f32(), M, K, qx.get(), sx.get());
  const PreparedInt8 pw = prepared(w, p->pd.weights_desc());
  const memory& wm = pw.mem;
  const float* sw = pw.scale.data();
  const int32_t* wsum = pw.sum.data();
  std::unique_ptr<int32_t[]> acc(new int32_t[size_t(M * N)]);
  memory src(src_md, onednn::engine(), qx.get()), dst(dst_md, onednn::engine(), acc.get());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, dst}};
  args[DNNL_ARG_SCRATCHPAD] = onednn::scratchpad(p->pd.scratchpad_desc());
  p->prim.execute(onednn::stream(), args);
  onednn::stream().wait();
  Shape os = x.shape();
  os.back() = N;
  y = Tensor::empty(os);
  Tensor bf = bias ? bias->as_f32() : Tensor(), rf = opt.residual ? opt.residual->as_f32() : Tensor();
  const float* b = bias ? bf.f32() : nullptr;
  const float* res = opt.residual ? rf.f32() : nullptr;
  float* out = y.f32();
#pragma omp parallel for schedule(static) if (M * N > (int64_t(1) << 15))
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      out[m * N + n] = dequant(acc[m * N + n] - 128 * wsum[n], sx[m], sw[n], b, n, res ? res + m * N + n : nullptr);
  return true;
}

}  // namespace pigment::ops::int8
