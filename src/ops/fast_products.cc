// Precision::Fast for linear() and conv2d(): oneDNN primitives with bfloat16 source and weights, float32
// accumulation and float32 destination, taken only where oneDNN runs them with the fast path's instructions (AMX, or
// AVX-512 BF16 on CPUs without AMX; checked per primitive from its implementation name, so that a reference or
// non-bf16 fallback inside oneDNN is never taken); anywhere else the float32 path runs.
// Which shapes go to AVX-512 BF16 (no AMX) follows ops_bench on an AMD EPYC (Zen 5, docs/performance.md): oneDNN's
// brgemm bf16 kernels run at 80-99 % of the vdpbf16ps peak, 1.5-2x the float32 kernels, for every linear and direct
// convolution of SD1.5, but the float32 Winograd kernel stays ahead on 3x3 convolutions of at most 320 channels from
// 64x64 outputs up (UNet 320 at 64x64, VAE 256 and 128 channels at 256² and 512²), and inputs of fewer than 16
// channels (conv_in) gain nothing; at most 4 outputs (the VAE's conv_out) stay with conv2d_narrow's kernel. Weights are converted once to bf16 in the primitive's
// blocked layout and kept here, keyed like WeightCache (data pointer, shape, dtype, layout, weak owner, a sampled
// fingerprint); a weight changed in place is dropped by forget_prepared (the trainer calls it after every step).
// Bias, activation and residual are fused as in the float32 path (bias f32, post-ops on the f32 accumulator).
// Precision::Reference takes the same hooks to run the scalar twins (ops/reference.h).
#include "ops/fast_products.h"
#include "ops/int8_products.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "core/cpu_isa.h"
#include "core/file_pages.h"
#include "ops/isa_cap.h"
#include "ops/onednn.h"
#include "ops/precision.h"
#include "ops/profile.h"
#include "ops/reference.h"

namespace pigment::ops {

namespace {
std::atomic<int> g_precision{-1};  // -1: not decided yet ($PIGMENT_PRECISION, else Fp32)
std::atomic<bool> g_fast_path_enabled{true};

Precision initial_precision() {
  const char* e = std::getenv("PIGMENT_PRECISION");
  return e && *e ? parse_precision(e) : Precision::Fp32;
}
}  // namespace

void set_precision(Precision p) { g_precision = int(p); }
Precision precision() {
  int v = g_precision.load();
  if (v < 0) {
    v = int(initial_precision());
    g_precision = v;
  }
  return Precision(v);
}
FastPath fast_path() {
  // oneDNN's view (capped with ours by $PIGMENT_MAX_ISA: see ops/isa_cap.h) and pigment's own check agree.
  static const FastPath cpu = [] {
    apply_isa_cap();
    const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
    if (isa >= dnnl::cpu_isa::avx512_core_amx && cpu_has(Isa::Amx)) return FastPath::Amx;
    if (isa >= dnnl::cpu_isa::avx512_core_bf16 && cpu_has(Isa::Avx512Bf16)) return FastPath::Avx512Bf16;
    return FastPath::None;
  }();
  return g_fast_path_enabled ? cpu : FastPath::None;
}
const char* fast_path_name(FastPath p) {
  return p == FastPath::Amx ? "AMX bf16" : p == FastPath::Avx512Bf16 ? "AVX-512 BF16" : "none";
}
bool fast_precision_available() { return fast_path() != FastPath::None; }
bool set_fast_path_enabled(bool on) { return g_fast_path_enabled.exchange(on); }
const char* precision_name(Precision p) {
  return p == Precision::Fast ? "fast" : p == Precision::Reference ? "reference" : p == Precision::Int8 ? "int8" : "exact";
}
Precision without_int8() { return precision() == Precision::Int8 ? Precision::Fast : precision(); }
Precision default_precision() { return fast_precision_available() ? Precision::Fast : Precision::Fp32; }
Precision parse_precision(const char* name) {
  const std::string s(name);
  if (s == "exact" || s == "fp32") return Precision::Fp32;
  if (s == "fast") return Precision::Fast;
  if (s == "int8") return Precision::Int8;
  if (s == "auto") return default_precision();
  if (s == "reference") return Precision::Reference;
  fail("unknown precision '", s, "' (expected auto, exact, fast, int8 or reference)");
}
const char* precision_used() {
  Precision p = precision();
  if (p == Precision::Int8 && !int8::available()) p = Precision::Fast;  // computes as Fast
  return p == Precision::Fast && !fast_precision_available() ? "exact" : precision_name(p);
}

namespace fast {
namespace {
using dnnl::memory;
using tag = memory::format_tag;
constexpr auto f32 = memory::data_type::f32;
constexpr auto bf16 = memory::data_type::bf16;

// ---- bf16 weights: a kept subset within a budget, the rest converted per call ----
struct WeightEntry : onednn::PreparedKey {
  memory mem;  // empty while converted per call
  size_t bytes;
  uint64_t uses = 0;        // in the current phase (phase says which)
  uint64_t phase = 0;
  uint64_t best = 0;        // most uses in one phase
  uint64_t last_use = 0;
};
struct Bf16Weights {
  std::mutex mu;
  std::unordered_multimap<const void*, WeightEntry> map;
  int inserts = 0;
  bool keep = true;
  size_t budget = 0;
  bool budget_chosen = false;  // by $PIGMENT_BF16_CACHE_MB or set_bf16_weight_budget: fit_bf16_weight_budget leaves it
  size_t bytes = 0;  // held by entries with memory
  uint64_t clock = 0;
  uint64_t phase = 1;
  void drop_memory(WeightEntry& e) {
    if (!e.mem) return;
    bytes -= e.bytes;
    e.mem = memory();
  }
  std::unordered_multimap<const void*, WeightEntry>::iterator erase(
      std::unordered_multimap<const void*, WeightEntry>::iterator it) {
    drop_memory(it->second);
    return map.erase(it);
  }
  // Room for `need` more bytes by dropping kept weights that the current phase has not used and that were reused
  // less within a phase than `uses` (a text encoder's weights make way for a UNet's; a UNet's, kept over a VAE
  // decode, are not dropped by the next image's text encoder). Least recently used first. Never takes weights in use
  // in this phase, so a model that visits its weights in a cycle keeps a fixed subset.
  bool make_room(size_t need, uint64_t uses) {
    while (bytes + need > budget) {
      WeightEntry* victim = nullptr;
      for (auto& [k, e] : map)
        if (e.mem && e.phase != phase && e.best < uses && (!victim || e.last_use < victim->last_use)) victim = &e;
      if (!victim) return false;
      drop_memory(*victim);
    }
    return true;
  }
};

// What the kept bf16 copies may hold: $PIGMENT_BF16_CACHE_MB megabytes when set, else kDefaultBf16Budget.
constexpr size_t kDefaultBf16Budget = size_t(2048) << 20;
size_t default_bf16_budget() {
  if (const char* e = std::getenv("PIGMENT_BF16_CACHE_MB")) {
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(e, &end, 10);
    PIG_CHECK(end && *end == 0 && *e != 0 && mb > 0,
              "PIGMENT_BF16_CACHE_MB: expected a positive number of megabytes, got '", e, "'");
    return size_t(mb) << 20;
  }
  return kDefaultBf16Budget;
}

bool budget_set_by_environment() { return std::getenv("PIGMENT_BF16_CACHE_MB") != nullptr; }

Bf16Weights& bf16_weights() {
  static Bf16Weights* w = [] {
    auto* c = new Bf16Weights;  // never destroyed: entries may be looked up during exit
    c->budget = default_bf16_budget();
    c->budget_chosen = budget_set_by_environment();
    return c;
  }();
  return *w;
}

// w as bf16 in layout `want`, written into dst's memory: in one pass where convert_to_blocked_bf16 takes the layout,
// else through a float32 copy and oneDNN's reorder (the same rounding).
void convert_into(const Tensor& w, const memory::desc& plain_f32, const memory::desc& want, memory& dst, bool kept) {
  profile::Scope prof([&] {
    return std::string(!w.owner() ? "fast weight prep (view)" : kept ? "fast weight prep (to keep)" : "fast weight prep (per call)");
  });
  onednn::map_released_pages(w);
  if (onednn::convert_to_blocked_bf16(w, plain_f32, want, dst.get_data_handle(), true)) return;
  // Other layouts (the backward-data convolution's, whose VNNI pairs run across output channels): rounded to plain
  // bf16 (the same rounding), then permuted by oneDNN's bf16 reorder (values moved, not changed).
  memory::desc plain_bf16 = plain_f32;
  plain_bf16.data.data_type = dnnl_bf16;
  auto& eng = onednn::engine();
  auto& strm = onednn::stream();
  if (plain_f32.data.format_kind == dnnl_blocked && plain_f32.data.format_desc.blocking.inner_nblks == 0 &&
      plain_bf16.get_size() == size_t(w.numel()) * 2) {
    Tensor wb = w.dtype() == DType::BF16 ? w : Tensor::empty(w.shape(), DType::BF16);
    if (w.dtype() != DType::BF16) {
      const size_t n = size_t(w.numel()), chunk = size_t(1) << 16;
      const float* f = w.dtype() == DType::F32 ? w.f32() : nullptr;
#pragma omp parallel if (n > (size_t(1) << 18))
      {
        std::vector<float> buf(f ? 0 : chunk);
#pragma omp for schedule(static)
        for (int64_t i = 0; i < int64_t(n); i += int64_t(chunk)) {
          const size_t m = std::min(chunk, n - size_t(i));
          const float* from = f ? f + i : buf.data();
          if (!f) onednn::to_f32(w.dtype(), static_cast<const uint16_t*>(w.raw()) + i, buf.data(), m);
          for (size_t k = 0; k < m; ++k) {
            uint32_t x;
            std::memcpy(&x, &from[k], 4);
            wb.data<uint16_t>()[size_t(i) + k] = (x & 0x7fffffffu) > 0x7f800000u
                                                     ? uint16_t((x >> 16) | 0x40)
                                                     : uint16_t((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
          }
        }
      }
    }
    memory src(plain_bf16, eng, const_cast<void*>(wb.raw()));
    dnnl::reorder(src, dst).execute(strm, src, dst);
    strm.wait();
    return;
  }
  if (onednn::convert_to_blocked_bf16(w, plain_f32, want, dst.get_data_handle())) return;
  Tensor wf = Tensor::empty(w.shape());
  onednn::to_f32(w.dtype(), w.raw(), wf.f32(), size_t(w.numel()));
  memory src(plain_f32, eng, wf.raw());
  dnnl::reorder(src, dst).execute(strm, src, dst);
  strm.wait();
}

onednn::PreparedWeight convert_owned(const Tensor& w, const memory::desc& plain_f32, const memory::desc& want) {
  memory m(want, onednn::engine());
  convert_into(w, plain_f32, want, m, true);
  return {m, nullptr};
}
onednn::PreparedWeight convert_scratch(const Tensor& w, const memory::desc& plain_f32, const memory::desc& want) {
  void* p = nullptr;
  std::shared_ptr<void> hold = onednn::weight_scratch(want.get_size(), &p);
  memory m(want, onednn::engine(), p);
  convert_into(w, plain_f32, want, m, false);
  return {m, hold};
}

// f32 data of a small vector (bias) in its own buffer when it is not f32 already.
Tensor f32_of(const Tensor& t) { return t.dtype() == DType::F32 ? t : t.as_f32(); }

// Reorders plain f32 src (desc `from`) into `to` (bf16) in a per-call buffer (kept alive by `holder`).
memory to_layout(const float* src, const memory::desc& from, const memory::desc& to, std::shared_ptr<void>& holder) {
  memory s(from, onednn::engine(), const_cast<float*>(src)), d = onednn::work_memory(to, holder);
  dnnl::reorder(s, d).execute(onednn::stream(), s, d);
  return d;
}

}  // namespace

bool runs_on(FastPath path, const char* impl) {
  if (path == FastPath::Amx) return std::strstr(impl, "amx") != nullptr;
  if (path == FastPath::Avx512Bf16) return std::strstr(impl, "avx512_core_bf16") != nullptr;
  return false;
}

FastPath active_path() {
  const Precision p = precision();
  return p == Precision::Fast || p == Precision::Int8 ? fast_path() : FastPath::None;
}

onednn::PreparedWeight prepared_bf16(const Tensor& w, const memory::desc& plain_f32, const memory::desc& want) {
  if (!w.owner()) return convert_owned(w, plain_f32, want);
  Bf16Weights& c = bf16_weights();
  const uint64_t fp = onednn::weight_fingerprint(w);
  const size_t bytes = want.get_size();
  bool keep = false;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    WeightEntry* found = nullptr;
    auto range = c.map.equal_range(w.raw());
    for (auto it = range.first; it != range.second;) {
      WeightEntry& e = it->second;
      if (e.stale_for(w, fp)) {
        it = c.erase(it);  // a freed weight's memory reused, or rewritten in place
        continue;
      }
      if (e.serves(w, want)) found = &e;
      ++it;
    }
    if (!found) {
      if (++c.inserts % 64 == 0)  // sweep entries of freed models
        for (auto it = c.map.begin(); it != c.map.end();) it = it->second.owner.expired() ? c.erase(it) : std::next(it);
      found = &c.map.emplace(w.raw(), WeightEntry{{w.owner(), w.shape(), w.dtype(), fp, want}, memory(), bytes})->second;
    }
    WeightEntry& e = *found;
    if (e.phase != c.phase) e.phase = c.phase, e.uses = 0;
    ++e.uses;
    e.best = std::max(e.best, e.uses);
    e.last_use = ++c.clock;
    if (e.mem) return {e.mem, nullptr};
    // Kept from its second use in a phase on, if the budget has room (see make_room).
    keep = c.keep && e.uses >= 2 && c.make_room(bytes, e.uses);
    if (keep) c.bytes += bytes;  // reserved now, so that another thread cannot overfill the budget meanwhile
  }
  if (!keep) {
    onednn::PreparedWeight p = convert_scratch(w, plain_f32, want);
    if (release_weight_pages()) drop_file_pages(w.raw(), w.nbytes());
    return p;
  }
  onednn::PreparedWeight p = convert_owned(w, plain_f32, want);
  // Kept: the weight's file pages (a memory-mapped checkpoint) need not stay resident (as WeightCache does); a later
  // conversion into another layout maps them again.
  drop_file_pages(w.raw(), w.nbytes());
  std::lock_guard<std::mutex> lock(c.mu);
  auto range = c.map.equal_range(w.raw());
  for (auto it = range.first; it != range.second; ++it) {
    WeightEntry& e = it->second;
    if (e.serves(w, want) && !e.mem && c.keep) {
      e.mem = p.mem;
      e.fingerprint = fp;
      return p;
    }
  }
  c.bytes -= bytes;  // forgotten meanwhile, or another thread kept it first: this copy serves this call only
  return p;
}

void forget(const Tensor& w) {
  Bf16Weights& c = bf16_weights();
  std::lock_guard<std::mutex> lock(c.mu);
  auto range = c.map.equal_range(w.raw());
  for (auto it = range.first; it != range.second;) it = c.erase(it);
}

bool set_keep_bf16_weights(bool on) {
  Bf16Weights& c = bf16_weights();
  std::lock_guard<std::mutex> lock(c.mu);
  const bool was = c.keep;
  c.keep = on;
  if (!on)
    for (auto it = c.map.begin(); it != c.map.end();) it = c.erase(it);
  return was;
}

size_t kept_bf16_weights() {
  Bf16Weights& c = bf16_weights();
  std::lock_guard<std::mutex> lock(c.mu);
  size_t n = 0;
  for (const auto& [k, e] : c.map) n += e.mem ? 1 : 0;
  return n;
}

size_t kept_bf16_bytes() {
  Bf16Weights& c = bf16_weights();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.bytes;
}

namespace {
void apply_budget(Bf16Weights& c, size_t bytes) {
  c.budget = bytes;
  // Least recently used first, until the new budget holds.
  while (c.bytes > c.budget) {
    WeightEntry* victim = nullptr;
    for (auto& [k, e] : c.map)
      if (e.mem && (!victim || e.last_use < victim->last_use)) victim = &e;
    if (!victim) break;
    c.drop_memory(*victim);
  }
}
}  // namespace

void set_bf16_weight_budget(size_t bytes) {
  PIG_CHECK(bytes > 0, "set_bf16_weight_budget: the budget must be positive");
  Bf16Weights& c = bf16_weights();
  std::lock_guard<std::mutex> lock(c.mu);
  c.budget_chosen = true;
  apply_budget(c, bytes);
}

void reset_bf16_weight_budget() {
  Bf16Weights& c = bf16_weights();
  std::lock_guard<std::mutex> lock(c.mu);
  c.budget_chosen = budget_set_by_environment();
  apply_budget(c, default_bf16_budget());
}

bool fit_bf16_weight_budget(size_t bytes) {
  Bf16Weights& c = bf16_weights();
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.budget_chosen) return false;
  apply_budget(c, std::clamp(bytes, size_t(1), kDefaultBf16Budget));
  return true;
}

void set_default_bf16_weight_budget(size_t bytes) {
  set_bf16_weight_budget(budget_set_by_environment() ? default_bf16_budget() : bytes);
}

size_t bf16_weight_budget() {
  Bf16Weights& c = bf16_weights();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.budget;
}

void new_weight_phase() {
  Bf16Weights& c = bf16_weights();
  std::lock_guard<std::mutex> lock(c.mu);
  ++c.phase;
}

void to_bf16(const float* src, uint16_t* dst, size_t n) {
#pragma omp parallel for schedule(static) if (n > (size_t(1) << 18))
  for (size_t i = 0; i < n; ++i) {
    uint32_t x;
    std::memcpy(&x, &src[i], 4);
    // round to nearest even; NaN stays NaN (quiet)
    dst[i] = (x & 0x7fffffffu) > 0x7f800000u ? uint16_t((x >> 16) | 0x40) : uint16_t((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
  }
}

bool linear(const Tensor& x, const Tensor& w, const Tensor* bias, const LinearOptions& opt, Tensor& y) {
  if (precision() == Precision::Reference) {
    y = ref::activation(ref::linear(x, w, bias), opt.activation);
    if (opt.residual) y = ref::add(y, *opt.residual);
    return true;
  }
  const FastPath path = active_path();
  if (path == FastPath::None) return false;
  const int64_t K = w.dim(1), N = w.dim(0), M = K ? x.numel() / K : 0;
  if (M == 0 || N == 0 || K == 0) return false;
  if (path == FastPath::Avx512Bf16 && K < 16) return false;
  const memory::desc src_f32({M, K}, f32, tag::ab), src_md({M, K}, bf16, tag::ab), dst_md({M, N}, f32, tag::ab),
      bias_md({1, N}, f32, tag::ab), w_plain({K, N}, f32, tag::ba);
  const std::string key = "fast-linear|" + std::to_string(M) + "," + std::to_string(K) + "," + std::to_string(N) +
                          "|" + std::to_string(bias != nullptr) + std::to_string(int(opt.activation)) +
                          std::to_string(opt.residual != nullptr) + (path == FastPath::Amx ? "|amx" : "|avx512bf16");
  auto p = onednn::cached<onednn::Matmul>(key, [&] {
    dnnl::post_ops po;
    onednn::append_activation(po, opt.activation);
    if (opt.residual) po.append_sum(1.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const memory::desc w_any({K, N}, bf16, tag::any);
    auto d = bias ? dnnl::matmul::desc(src_md, w_any, bias_md, dst_md) : dnnl::matmul::desc(src_md, w_any, dst_md);
    return onednn::make_matmul(d, attr, [&](const char* impl) { return runs_on(path, impl); });
  });
  if (!p) return false;
  profile::Scope prof(
      [&] { return "fast linear " + std::to_string(K) + "->" + std::to_string(N) + " M" + std::to_string(M); },
      2.0 * double(M) * double(N) * double(K));
  Shape os = x.shape();
  os.back() = N;
  y = Tensor::empty(os);
  if (opt.residual) {
    Tensor r = opt.residual->as_f32();
    std::memcpy(y.raw(), r.raw(), y.nbytes());
  }
  Tensor xf = x.as_f32();
  std::shared_ptr<void> src_buf;
  memory src = to_layout(xf.f32(), src_f32, src_md, src_buf);
  onednn::PreparedWeight pw = prepared_bf16(w, w_plain, p->pd.weights_desc());
  const memory& wm = pw.mem;
  memory dst(dst_md, onednn::engine(), y.raw());
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, dst}};
  Tensor bf;
  if (bias) {
    bf = f32_of(*bias);
    args[DNNL_ARG_BIAS] = memory(bias_md, onednn::engine(), const_cast<void*>(bf.raw()));
  }
  args[DNNL_ARG_SCRATCHPAD] = onednn::scratchpad(p->pd.scratchpad_desc());
  p->prim.execute(onednn::stream(), args);
  onednn::stream().wait();
  return true;
}

bool takes_conv(int64_t in_channels, int64_t out_channels, int64_t out_pixels, bool fp32_winograd) {
  switch (active_path()) {
    case FastPath::None:
      return false;
    case FastPath::Amx:
      return true;
    case FastPath::Avx512Bf16:
      return in_channels >= 16 && out_channels > 4 &&
             !(fp32_winograd && in_channels <= 320 && out_channels <= 320 && out_pixels >= 64 * 64);
  }
  return false;
}

bool conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p, const Conv2dOptions& opt,
            bool fp32_winograd, Tensor& y) {
  if (precision() == Precision::Reference) {
    y = ref::conv2d(x, w, bias, p);
    if (opt.residual) y = ref::add(y, *opt.residual);
    return true;
  }
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), O = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  const int64_t Ho = (H + p.pad_top + p.pad_bottom - kh) / p.stride + 1;
  const int64_t Wo = (W + p.pad_left + p.pad_right - kw) / p.stride + 1;
  if (N == 0 || C == 0 || O == 0 || Ho <= 0 || Wo <= 0) return false;
  if (!takes_conv(C, O, Ho * Wo, fp32_winograd)) return false;
  const FastPath path = active_path();
  const memory::dims strides{p.stride, p.stride}, pad_l{p.pad_top, p.pad_left}, pad_r{p.pad_bottom, p.pad_right};
  std::string key = onednn::conv_key("fast-conv", N, C, H, W, O, kh, kw, p);
  key += std::to_string(bias != nullptr) + std::to_string(opt.residual != nullptr);
  key += path == FastPath::Amx ? "|amx" : "|avx512bf16";
  auto prim = onednn::cached<onednn::Conv>(key, [&]() -> std::shared_ptr<onednn::Conv> {
    // Activations channels-last (what the bf16 kernels want); weights blocked as the kernel asks.
    const memory::desc x_md({N, C, H, W}, bf16, tag::nhwc), w_any({O, C, kh, kw}, bf16, tag::any),
        y_md({N, O, Ho, Wo}, f32, tag::nhwc), b_md({O}, f32, tag::x);
    const auto prop = dnnl::prop_kind::forward_inference;
    const auto alg = dnnl::algorithm::convolution_direct;
    auto d = bias ? dnnl::convolution_forward::desc(prop, alg, x_md, w_any, b_md, y_md, strides, pad_l, pad_r)
                  : dnnl::convolution_forward::desc(prop, alg, x_md, w_any, y_md, strides, pad_l, pad_r);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (opt.residual) {
      dnnl::post_ops po;
      po.append_sum(1.f);
      attr.set_post_ops(po);
    }
    return onednn::make_conv(d, attr, [&](const char* impl) { return runs_on(path, impl); });
  });
  if (!prim) return false;
  profile::Scope prof(
      [&] {
        return "fast conv2d " + std::to_string(kh) + "x" + std::to_string(kw) + (p.stride > 1 ? " s2 " : " ") +
               std::to_string(C) + "->" + std::to_string(O) + " @" + std::to_string(Ho) + "x" + std::to_string(Wo) +
               " N" + std::to_string(N);
      },
      2.0 * double(N * O * Ho * Wo) * double(C * kh * kw));
  auto& eng = onednn::engine();
  auto& strm = onednn::stream();
  const memory::desc x_plain({N, C, H, W}, f32, tag::nchw), y_plain({N, O, Ho, Wo}, f32, tag::nchw),
      w_plain({O, C, kh, kw}, f32, tag::oihw), b_md({O}, f32, tag::x);
  Tensor xf = x.as_f32();
  std::shared_ptr<void> x_buf, y_buf;
  memory x_mem = to_layout(xf.f32(), x_plain, prim->pd.src_desc(), x_buf);
  memory y_mem = onednn::work_memory(prim->pd.dst_desc(), y_buf);
  y = Tensor::empty({N, O, Ho, Wo});
  memory y_user(y_plain, eng, y.raw());
  Tensor rf;
  if (opt.residual) {  // the sum post-op adds to what dst holds
    rf = opt.residual->as_f32();
    memory r_user(y_plain, eng, const_cast<void*>(rf.raw()));
    dnnl::reorder(r_user, y_mem).execute(strm, r_user, y_mem);
  }
  onednn::PreparedWeight pw = prepared_bf16(w, w_plain, prim->pd.weights_desc());
  const memory& wm = pw.mem;
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, x_mem}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, y_mem}};
  Tensor bf;
  if (bias) {
    bf = f32_of(*bias);
    args[DNNL_ARG_BIAS] = memory(b_md, eng, const_cast<void*>(bf.raw()));
  }
  args[DNNL_ARG_SCRATCHPAD] = onednn::scratchpad(prim->pd.scratchpad_desc());
  prim->prim.execute(strm, args);
  dnnl::reorder(y_mem, y_user).execute(strm, y_mem, y_user);
  strm.wait();
  return true;
}

}  // namespace fast

void forget_prepared(const Tensor& w) {
  default_weight_cache().forget(w);
  fast::forget(w);
  int8::forget(w);
}

}  // namespace pigment::ops
