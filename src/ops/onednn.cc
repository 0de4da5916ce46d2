// oneDNN engine, per-thread streams, the primitive cache and the weight cache.
#include "ops/onednn.h"

#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <numeric>
#include <unordered_map>
#include <vector>

#include "core/allocator.h"
#include "core/cpu_isa.h"
#include "core/file_pages.h"
#include "ops/isa_cap.h"
#include "ops/profile.h"
#include "ops/simd_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace pigment::ops {

namespace onednn {

dnnl::engine& engine() {
  static dnnl::engine e = [] {
    apply_isa_cap();  // before oneDNN's first kernel fixes its ISA
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

namespace {
thread_local std::shared_ptr<void> t_scratchpad;  // from core/allocator's pool
thread_local size_t t_scratchpad_size = 0;
}  // namespace

dnnl::memory scratchpad(const dnnl::memory::desc& md) {
  auto& buf = t_scratchpad;
  size_t& size = t_scratchpad_size;
  size_t need = md.get_size();
  if (need > size) {
    buf.reset();  // back to the pool first: it may serve the larger block
    buf = allocate(need);
    size = need;
  }
  return dnnl::memory(md, engine(), need ? buf.get() : nullptr);
}

namespace {
struct PrimitiveCache {
  std::mutex mu;
  std::list<std::string> order;  // most recent first
  struct Slot {
    std::shared_ptr<void> value;
    std::list<std::string>::iterator pos;
  };
  std::unordered_map<std::string, Slot> map;
  static constexpr size_t kCapacity = 512;
};
PrimitiveCache& primitive_cache() {
  static PrimitiveCache* c = new PrimitiveCache;  // never destroyed: primitives may outlive static destruction order
  return *c;
}
}  // namespace

std::shared_ptr<void> cached_primitive(const std::string& key, const std::function<std::shared_ptr<void>()>& make) {
  std::string k = key + "|t" + std::to_string(omp_get_max_threads());
  PrimitiveCache& c = primitive_cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.map.find(k);
    if (it != c.map.end()) {
      c.order.splice(c.order.begin(), c.order, it->second.pos);
      return it->second.value;
    }
  }
  std::shared_ptr<void> v = make();  // outside the lock: creating a primitive compiles a kernel
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.map.find(k);
  if (it != c.map.end()) return it->second.value;
  c.order.push_front(k);
  c.map[k] = {v, c.order.begin()};
  while (c.map.size() > PrimitiveCache::kCapacity) {
    c.map.erase(c.order.back());
    c.order.pop_back();
  }
  return v;
}

size_t cached_primitive_count() {
  std::lock_guard<std::mutex> lock(primitive_cache().mu);
  return primitive_cache().map.size();
}

void to_f32(DType from, const void* src, float* dst, size_t n) {
  if (from == DType::F16) {
#pragma omp parallel for schedule(static) if (n > (1 << 18))
    for (int64_t i = 0; i < int64_t(n); i += 65536)
      simd::f16_to_f32(static_cast<const uint16_t*>(src) + i, dst + i, std::min<size_t>(65536, n - i));
  } else if (from == DType::BF16) {
#pragma omp parallel for schedule(static) if (n > (1 << 18))
    for (int64_t i = 0; i < int64_t(n); i += 65536)
      simd::bf16_to_f32(static_cast<const uint16_t*>(src) + i, dst + i, std::min<size_t>(65536, n - i));
  } else {
    convert_to_f32(from, src, dst, n);
  }
}

namespace {
// Evenly spaced sample of the weight's bytes: cheap, and changes when the weight is rewritten in place.
// Weights in a read-only file mapping cannot change and are not sampled (that would map their pages back in).
uint64_t fingerprint(const Tensor& w) {
  if (in_file_mapping(w.raw(), w.nbytes())) return 0;
  const auto* p = static_cast<const unsigned char*>(w.raw());
  size_t es = dtype_size(w.dtype()), n = size_t(w.numel());
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](size_t i) {
    for (size_t b = 0; b < es; ++b) h = (h ^ p[i * es + b]) * 1099511628211ull;
  };
  size_t samples = std::min<size_t>(n, 64);
  for (size_t s = 0; s < samples; ++s) mix(samples > 1 ? s * (n - 1) / (samples - 1) : 0);
  return h;
}

// Converts and reorders into `out` (its own memory or scratch), by convert_to_blocked where it applies, else by
// converting to plain float32 and running oneDNN's reorder.
void prepare_into(const Tensor& w, const dnnl::memory::desc& plain, const dnnl::memory::desc& want,
                  dnnl::memory out) {
  map_released_pages(w);
  if (convert_to_blocked(w, plain, want, out.get_data_handle())) return;
  Tensor f;
  const void* src = w.raw();
  if (w.dtype() != DType::F32) {
    f = Tensor::empty(w.shape());
    to_f32(w.dtype(), w.raw(), f.f32(), size_t(w.numel()));
    src = f.raw();
  }
  dnnl::memory::desc plain32 = plain;
  plain32.data.data_type = dnnl_f32;
  dnnl::memory in(plain32, engine(), const_cast<void*>(src));
  if (plain32 == want) {
    std::memcpy(out.get_data_handle(), src, want.get_size());
  } else {
    dnnl::reorder(in, out).execute(stream(), in, out);
    stream().wait();
  }
}

// Weights converted per call go to a per-thread buffer that only grows (from core/allocator's pool, whose pages stay
// resident: a fresh buffer per call would cost a page fault per 4 KiB every time). A second preparation while the
// buffer is still held (two weights for one primitive) gets memory of its own.
struct Scratch {
  std::shared_ptr<void> data;
  size_t capacity = 0;
  bool busy = false;
};
thread_local Scratch t_weight_scratch;
std::shared_ptr<void> lease_scratch(size_t bytes, void** out) {
  Scratch& s = t_weight_scratch;
  if (s.busy) {
    std::shared_ptr<void> own = allocate(bytes);
    *out = own.get();
    return own;
  }
  if (bytes > s.capacity) {
    s.data.reset();
    s.capacity = 0;
    s.data = allocate(bytes);
    s.capacity = bytes;
  }
  s.busy = true;
  *out = s.data.get();
  Scratch* sp = &s;
  return std::shared_ptr<void>(s.data.get(), [sp](void*) { sp->busy = false; });
}

std::atomic<bool> g_release_pages{false};

// What the default cache may hold (see ops.h).
constexpr size_t kDefaultWeightCacheBudget = size_t(1280) << 20;

size_t default_budget() {
  if (const char* e = std::getenv("PIGMENT_WEIGHT_CACHE_MB")) {
    char* end = nullptr;
    unsigned long long mb = std::strtoull(e, &end, 10);
    PIG_CHECK(end && *end == 0 && mb > 0, "PIGMENT_WEIGHT_CACHE_MB: expected a positive number of megabytes, got '", e,
              "'");
    return size_t(mb) << 20;
  }
  return kDefaultWeightCacheBudget;
}
}  // namespace

uint64_t weight_fingerprint(const Tensor& w) { return fingerprint(w); }

bool same_owner(const std::weak_ptr<const void>& a, const std::shared_ptr<const void>& b) {
  return !a.owner_before(b) && !b.owner_before(a);
}
bool PreparedKey::stale_for(const Tensor& w, uint64_t fp) const {
  return owner.expired() || !same_owner(owner, w.owner()) ||
         (shape == w.shape() && dtype == w.dtype() && fingerprint != fp);
}
bool PreparedKey::serves(const Tensor& w, const dnnl::memory::desc& want) const {
  return same_owner(owner, w.owner()) && shape == w.shape() && dtype == w.dtype() && layout == want;
}

namespace {
// A primitive (Matmul, Conv: its pd and prim) for `d`, or null where oneDNN has none or `accept` refuses it.
template <typename P, typename Desc>
std::shared_ptr<P> make_primitive(const Desc& d, const dnnl::primitive_attr& attr,
                                  const std::function<bool(const char*)>& accept) {
  try {
    decltype(P::pd) pd(d, attr, engine());
    if (!accept(pd.impl_info_str())) return nullptr;
    return std::make_shared<P>(P{pd, decltype(P::prim)(pd)});
  } catch (const dnnl::error&) {
    return nullptr;
  }
}
}  // namespace
std::shared_ptr<Matmul> make_matmul(const dnnl::matmul::desc& d, const dnnl::primitive_attr& attr,
                                    const std::function<bool(const char*)>& accept) {
  return make_primitive<Matmul>(d, attr, accept);
}
std::shared_ptr<Conv> make_conv(const dnnl::convolution_forward::desc& d, const dnnl::primitive_attr& attr,
                                const std::function<bool(const char*)>& accept) {
  return make_primitive<Conv>(d, attr, accept);
}
std::string conv_key(const char* kind, int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw,
                     const Conv2dParams& p) {
  std::string k = std::string(kind) + "|";
  for (int64_t v : {N, C, H, W, O, kh, kw, int64_t(p.stride), int64_t(p.pad_top), int64_t(p.pad_left),
                    int64_t(p.pad_bottom), int64_t(p.pad_right)})
    k += std::to_string(v) + ",";
  return k;
}
std::shared_ptr<void> weight_scratch(size_t bytes, void** out) { return lease_scratch(bytes, out); }

}  // namespace onednn

struct WeightCache::Impl {
  struct Entry {
    const void* data;
    Shape shape;
    DType dtype;
    std::weak_ptr<const void> owner;
    uint64_t fingerprint;
    dnnl::memory::desc layout;
    dnnl::memory mem;    // empty while the weight is converted per call (only its use count is kept)
    std::shared_ptr<void> hold;  // mem's memory
    size_t bytes;        // of the prepared form
    bool streamable;     // cheap to convert per call (a blocked layout convert_to_blocked handles, not tiny)
    uint64_t uses = 0;
    uint64_t last_use = 0;
  };
  mutable std::mutex mu;
  std::unordered_multimap<const void*, Entry> map;
  size_t budget = 0;
  size_t bytes = 0;   // held by entries with memory
  size_t count = 0;   // entries with memory
  uint64_t clock = 0;

  static bool same_owner(const std::weak_ptr<const void>& a, const std::shared_ptr<const void>& b) {
    return onednn::same_owner(a, b);
  }
  void drop_memory(Entry& e) {
    if (!e.mem) return;
    bytes -= e.bytes;
    --count;
    e.mem = dnnl::memory();
    e.hold.reset();
  }
  std::unordered_multimap<const void*, Entry>::iterator erase(std::unordered_multimap<const void*, Entry>::iterator it) {
    drop_memory(it->second);
    return map.erase(it);
  }
  void sweep_dead() {
    for (auto it = map.begin(); it != map.end();) it = it->second.owner.expired() ? erase(it) : std::next(it);
  }
  // Frees memory until the budget holds: weights that are cheap to convert per call first (they go back to being
  // converted per call), then the least recently used of the others. `keep` is never chosen.
  void evict_to_budget(const Entry* keep) {
    while (bytes > budget) {
      Entry* victim = nullptr;
      for (auto& [k, e] : map) {
        if (!e.mem || &e == keep) continue;
        if (!victim || (e.streamable && !victim->streamable) ||
            (e.streamable == victim->streamable && e.last_use < victim->last_use))
          victim = &e;
      }
      if (!victim) break;
      drop_memory(*victim);
    }
  }
};

WeightCache::WeightCache(size_t budget_bytes) : impl_(std::make_unique<Impl>()) {
  impl_->budget = budget_bytes ? budget_bytes : onednn::default_budget();
}
WeightCache::~WeightCache() = default;

void WeightCache::clear() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->map.clear();
  impl_->bytes = 0;
  impl_->count = 0;
}

void WeightCache::forget(const Tensor& w) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto range = impl_->map.equal_range(w.raw());
  for (auto it = range.first; it != range.second;) it = impl_->erase(it);
}

void WeightCache::set_budget(size_t bytes) {
  PIG_CHECK(bytes > 0, "WeightCache::set_budget: the budget must be positive");
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->budget = bytes;
  impl_->evict_to_budget(nullptr);
}

void WeightCache::release_streamable() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  for (auto& [k, e] : impl_->map)
    if (e.streamable) {
      impl_->drop_memory(e);
      e.uses = 0;  // the next use counts as a first one: a phase that uses its weights once keeps none
    }
}

size_t WeightCache::budget() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->budget;
}
size_t WeightCache::bytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->bytes;
}
size_t WeightCache::entries() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->count;
}

size_t default_weight_cache_budget() { return onednn::default_budget(); }

WeightCache& default_weight_cache() {
  static WeightCache* c = new WeightCache();  // never destroyed: outlives every model
  return *c;
}

void release_work_memory() {
  onednn::t_scratchpad.reset();
  onednn::t_scratchpad_size = 0;
  onednn::Scratch& s = onednn::t_weight_scratch;
  if (!s.busy) {
    s.data.reset();
    s.capacity = 0;
  }
}

void set_release_weight_pages(bool on) { onednn::g_release_pages = on; }
bool release_weight_pages() { return onednn::g_release_pages.load(); }

namespace onednn {

namespace {
// Below this a prepared weight is always kept (converting it per call would cost more in overhead than it saves).
constexpr size_t kStreamMin = size_t(1) << 20;

bool is_blocked_f32(const dnnl::memory::desc& md) {
  if (md.data.data_type != dnnl_f32) return false;
  if (md.data.format_kind == dnnl_format_kind_wino)
    return md.data.format_desc.wino_desc.wino_format == dnnl_wino_wei_OBaaIBOIio ||
           md.data.format_desc.wino_desc.wino_format == dnnl_wino_wei_aaOBiOo;
  return md.data.format_kind == dnnl_blocked && md.data.extra.flags == 0;
}

// PIGMENT_PROFILE rows for weight preparation (also counted inside the product's own row): what the kept set
// saves, per layout kind.
std::string prep_row(const char* when, const dnnl::memory::desc& want) {
  return std::string("weight prep ") + when +
         (want.data.format_kind == dnnl_format_kind_wino ? ", winograd" : ", blocked");
}

PreparedWeight prepare_owned(const Tensor& w, const dnnl::memory::desc& plain, const dnnl::memory::desc& want) {
  profile::Scope prof([&] { return prep_row("to keep", want); });
  // From core/allocator's pool: a phase's kept weights, dropped at its end (release_streamable), give their pages to
  // the next phase's work instead of leaving malloc's heap to grow beside it.
  std::shared_ptr<void> hold = allocate(want.get_size());
  dnnl::memory out(want, engine(), hold.get());
  prepare_into(w, plain, want, out);
  return {out, hold};
}

PreparedWeight prepare_scratch(const Tensor& w, const dnnl::memory::desc& plain, const dnnl::memory::desc& want) {
  profile::Scope prof([&] { return prep_row("per call", want); });
  void* p = nullptr;
  std::shared_ptr<void> hold = lease_scratch(want.get_size(), &p);
  dnnl::memory out(want, engine(), p);
  prepare_into(w, plain, want, out);
  return {out, hold};
}

void after_use(const Tensor& w, bool kept) {
  // A kept weight's file pages are not read again; a weight converted per call is read again next time, so its
  // pages go only when asked (low-memory mode).
  if (kept || g_release_pages.load()) drop_file_pages(w.raw(), w.nbytes());
}
}  // namespace

PreparedWeight prepared(WeightCache* cache, const Tensor& w, const dnnl::memory::desc& plain,
                        const dnnl::memory::desc& want) {
  const size_t bytes = want.get_size();
  if (!w.owner()) return prepare_owned(w, plain, want);
  WeightCache::Impl& c = (cache ? *cache : default_weight_cache()).impl();
  const uint64_t fp = fingerprint(w);
  const bool streamable = bytes >= kStreamMin && is_blocked_f32(want);
  bool pin = !streamable;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto range = c.map.equal_range(w.raw());
    WeightCache::Impl::Entry* found = nullptr;
    for (auto it = range.first; it != range.second;) {
      WeightCache::Impl::Entry& e = it->second;
      if (e.owner.expired() || !WeightCache::Impl::same_owner(e.owner, w.owner())) {
        it = c.erase(it);  // memory of a freed weight, now reused
        continue;
      }
      if (e.shape == w.shape() && e.dtype == w.dtype()) {
        if (e.fingerprint != fp) {
          it = c.erase(it);  // rewritten in place
          continue;
        }
        if (e.layout == want) found = &e;
      }
      ++it;
    }
    if (found) {
      found->last_use = ++c.clock;
      ++found->uses;
      if (found->mem) return {found->mem, found->hold};
      // Used again: keep it from now on if the budget has room (never evicting others for it, so that a model
      // that visits its weights in a cycle does not thrash).
      pin = found->uses >= 2 && c.bytes + bytes <= c.budget;
      if (!pin) {
        PreparedWeight p = prepare_scratch(w, plain, want);
        after_use(w, false);
        return p;
      }
    } else if (streamable) {
      c.sweep_dead();
      c.map.emplace(w.raw(), WeightCache::Impl::Entry{w.raw(), w.shape(), w.dtype(), w.owner(), fp, want,
                                                      dnnl::memory(), nullptr, bytes, true, 1, ++c.clock});
      PreparedWeight p = prepare_scratch(w, plain, want);
      after_use(w, false);
      return p;
    }
  }
  PreparedWeight p = prepare_owned(w, plain, want);
  after_use(w, true);
  std::lock_guard<std::mutex> lock(c.mu);
  c.sweep_dead();
  WeightCache::Impl::Entry* e = nullptr;
  auto range = c.map.equal_range(w.raw());
  for (auto it = range.first; it != range.second; ++it)
    if (WeightCache::Impl::same_owner(it->second.owner, w.owner()) && it->second.shape == w.shape() &&
        it->second.dtype == w.dtype() && it->second.layout == want)
      e = &it->second;
  if (!e)
    e = &c.map.emplace(w.raw(), WeightCache::Impl::Entry{w.raw(), w.shape(), w.dtype(), w.owner(), fp, want,
                                                         dnnl::memory(), nullptr, bytes, streamable, 1, ++c.clock})
             ->second;
  if (e->mem) return {e->mem, e->hold};  // another thread prepared it meanwhile
  e->mem = p.mem;
  e->hold = p.hold;
  e->fingerprint = fp;
  c.bytes += bytes;
  ++c.count;
  c.evict_to_budget(e);
  if (c.bytes > c.budget) c.drop_memory(*e);  // alone over budget: used this once (p keeps it alive for the call)
  return p;
}

namespace {
// The group scatter of convert_to_blocked on AVX-512: 16x16 tiles of the group's rows (read straight from the
// source, f16/bf16 widened on load: exact) transposed in registers, each of a tile's columns stored as one 64-byte
// run at its destination. Values are moved, never computed, so the result is the scalar loop's bit for bit.
// Compiled for AVX-512 by target attribute (the build has no -march); used only where the CPU has it.
#if defined(__x86_64__) && defined(__GNUC__)
#define PIG_HAVE_AVX512_SCATTER 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (their _mm512_undefined_*)
// PIGMENT_PORTABLE_WEIGHT_PREP=1 starts with the portable loops (for A/B measurements; the bits are the same).
std::atomic<bool> g_simd_weight_prep{std::getenv("PIGMENT_PORTABLE_WEIGHT_PREP") == nullptr};
bool cpu_has_avx512f() {
  static const bool has = cpu_has(Isa::Avx512);
  return has && g_simd_weight_prep.load(std::memory_order_relaxed);
}

template <DType dt>
__attribute__((target("avx512f"))) inline __m512 load16(const char* p) {
  if constexpr (dt == DType::F16) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  } else if constexpr (dt == DType::BF16) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  } else {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(p));
  }
}

__attribute__((target("avx512f"))) inline void transpose16(__m512 (&r)[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    u[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int h = 0; h < 16; h += 8)
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_f32x4(u[h + i], u[h + 4 + i], 0x88);
      t[h + 4 + i] = _mm512_shuffle_f32x4(u[h + i], u[h + 4 + i], 0xdd);
    }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd);
  }
}

// Rows [0, n16) (n16 a multiple of 16) and source elements [0, j16) (a multiple of 16) of a group whose rows sit
// side by side at the destination: out[off[j] + r] = src[r·row_len + j].
template <DType dt>
__attribute__((target("avx512f"))) void scatter_tiles(const char* src, int64_t row_len, int64_t n16, int64_t j16,
                                                      float* out, const int64_t* off) {
  constexpr size_t es = dt == DType::F32 ? 4 : 2;
  for (int64_t j = 0; j < j16; j += 16)
    for (int64_t r0 = 0; r0 < n16; r0 += 16) {
      __m512 v[16];
      for (int t = 0; t < 16; ++t) v[t] = load16<dt>(src + size_t((r0 + t) * row_len + j) * es);
      transpose16(v);
      for (int t = 0; t < 16; ++t) _mm512_storeu_ps(out + off[j + t] + r0, v[t]);
    }
}

// As much of the group as whole tiles cover; returns false (nothing done) when there is no AVX-512.
bool scatter_group_avx512(DType dt, const char* src, int64_t row_len, int64_t n, float* out, const int64_t* off,
                          int64_t* n16, int64_t* j16) {
  if (!cpu_has_avx512f()) return false;
  *n16 = n / 16 * 16;
  *j16 = row_len / 16 * 16;
  if (*n16 == 0 || *j16 == 0) return false;
  if (dt == DType::F16) scatter_tiles<DType::F16>(src, row_len, *n16, *j16, out, off);
  else if (dt == DType::BF16) scatter_tiles<DType::BF16>(src, row_len, *n16, *j16, out, off);
  else scatter_tiles<DType::F32>(src, row_len, *n16, *j16, out, off);
  return true;
}
// The Winograd transform of one block of 16 output channels (convert_to_winograd's loop over input channels): rows
// holds the block's 16 weights rows as float32 (row floats each, zeros past the output channels), c < C real input
// channels, up to IC with zeros. Each input channel's 9 taps of the 16 channels come out of 16x16 transposes, and
// the same products and sums as the scalar loop run in the 16 lanes, in the same order, each rounded on its own
// (the _round_ forms are never contracted into FMAs), so every value is the scalar loop's bit for bit.
template <typename Offset>
__attribute__((target("avx512f"))) void winograd_block16(const float* rows, size_t row, int64_t C, int64_t IC,
                                                         const float (*G)[3], int A, float* out,
                                                         const Offset& offset) {
  constexpr int R = _MM_FROUND_CUR_DIRECTION;
  alignas(64) float pad[16][144];
  __m512 kv[144];
  for (int64_t c0 = 0; c0 < IC; c0 += 16) {
    const int64_t nc = std::min<int64_t>(16, IC - c0);
    const float* base = rows + c0 * 9;
    size_t ld = row;
    if (c0 + 16 > C) {  // the last input channels, and zeros past them
      for (int o = 0; o < 16; ++o)
        for (int q = 0; q < 144; ++q) pad[o][q] = c0 + q / 9 < C ? rows[size_t(o) * row + size_t(c0 * 9 + q)] : 0.f;
      base = &pad[0][0];
      ld = 144;
    }
    for (int q = 0; q < 9; ++q) {
      __m512 v[16];
      for (int o = 0; o < 16; ++o) v[o] = _mm512_loadu_ps(base + size_t(o) * ld + size_t(q) * 16);
      transpose16(v);
      for (int t = 0; t < 16; ++t) kv[q * 16 + t] = v[t];
    }
    for (int64_t cl = 0; cl < nc; ++cl) {
      const __m512* k = kv + cl * 9;
      __m512 t[3][6];
      for (int kh = 0; kh < 3; ++kh)  // t = g·Gᵀ along the kernel's width
        for (int j = 0; j < A; ++j) {
          const __m512 a = _mm512_mul_round_ps(k[kh * 3], _mm512_set1_ps(G[j][0]), R);
          const __m512 b = _mm512_mul_round_ps(k[kh * 3 + 1], _mm512_set1_ps(G[j][1]), R);
          const __m512 c = _mm512_mul_round_ps(k[kh * 3 + 2], _mm512_set1_ps(G[j][2]), R);
          t[kh][j] = _mm512_add_round_ps(_mm512_add_round_ps(a, b, R), c, R);
        }
      for (int i = 0; i < A; ++i)  // U = G·t along its height
        for (int j = 0; j < A; ++j) {
          const __m512 a = _mm512_mul_round_ps(_mm512_set1_ps(G[i][0]), t[0][j], R);
          const __m512 b = _mm512_mul_round_ps(_mm512_set1_ps(G[i][1]), t[1][j], R);
          const __m512 c = _mm512_mul_round_ps(_mm512_set1_ps(G[i][2]), t[2][j], R);
          _mm512_storeu_ps(out + offset(c0 + cl, i, j), _mm512_add_round_ps(_mm512_add_round_ps(a, b, R), c, R));
        }
    }
  }
}
#pragma GCC diagnostic pop
#endif

float element_f32(DType dt, const char* p) {
  uint16_t h;
  if (dt == DType::F32) {
    float f;
    std::memcpy(&f, p, sizeof f);
    return f;
  }
  std::memcpy(&h, p, sizeof h);
  return dt == DType::F16 ? half_to_float(h) : bf16_to_float(h);
}
}  // namespace

namespace {
// oneDNN's Winograd weight layouts for float32 3x3 kernels: F(4,3) (OBaaIBOIio, alpha 6) and F(2,3) (aaOBiOo, alpha
// 4). The transform is U = G·g·Gᵀ per (output, input) channel pair, with oneDNN's own (scaled) G matrices, so the
// kernels see exactly the weights they expect; the destination offsets follow the layouts' definitions. oneDNN's
// reorder does the same work with scalar loops (seconds for a 1280x1280 kernel); here it is one pass over the weight,
// 16 output channels at a time in vector lanes.
bool convert_to_winograd(const Tensor& w, const dnnl_memory_desc_t& P, const dnnl_memory_desc_t& D, void* dst) {
  const dnnl_wino_desc_t& wd = D.format_desc.wino_desc;
  static const float G4[6][3] = {{1.13777777777778f, 0.f, 0.f},
                                 {-0.688403361344538f, -0.430252100840336f, -0.26890756302521f},
                                 {-0.688403361344538f, 0.430252100840336f, -0.26890756302521f},
                                 {0.119514472455649f, 0.179271708683473f, 0.26890756302521f},
                                 {0.119514472455649f, -0.179271708683473f, 0.26890756302521f},
                                 {0.f, 0.f, 1.f}};
  static const float G2[4][3] = {{1.f, 0.f, 0.f}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0.f, 0.f, 1.f}};
  const bool f43 = wd.wino_format == dnnl_wino_wei_OBaaIBOIio;
  if (!(f43 || wd.wino_format == dnnl_wino_wei_aaOBiOo) || D.data_type != dnnl_f32 || P.ndims != 4 || wd.r != 3 ||
      wd.alpha != (f43 ? 6 : 4) || P.dims[2] != 3 || P.dims[3] != 3)
    return false;
  if (w.dtype() != DType::F32 && w.dtype() != DType::F16 && w.dtype() != DType::BF16) return false;
  const int64_t O = P.dims[0], C = P.dims[1];
  const auto& st = P.format_desc.blocking.strides;  // must be dense OIhw
  if (P.format_desc.blocking.inner_nblks != 0 || st[3] != 1 || st[2] != 3 || st[1] != 9 || st[0] != 9 * C) return false;
  const int A = wd.alpha, ocb = wd.oc_block, icb = wd.ic_block, oc2 = wd.oc2_block, ic2 = f43 ? wd.ic2_block : 1;
  const int64_t OC = wd.oc, IC = wd.ic;
  if (ocb <= 0 || ocb > 64 || icb <= 0 || OC < O || IC < C || OC % (ocb * oc2) || IC % (icb * ic2)) return false;
  const int64_t nb_oc = OC / ocb, nb_ic = IC / icb, oc_chunks = nb_oc / oc2, ic_chunks = nb_ic / ic2;
  if (size_t(A * A) * size_t(OC * IC) * sizeof(float) > wd.size) return false;
  const float(*G)[3] = f43 ? G4 : reinterpret_cast<const float(*)[3]>(G2);
  float* out = static_cast<float*>(dst);
  // Offset of the run of ocb output channels of block `ob` (absolute) for input channel c at (uh, uw).
  auto offset = [&](int64_t ob, int64_t c, int uh, int uw) -> int64_t {
    const int64_t occ = ob / oc2, o2 = ob % oc2, ib_all = c / icb, i = c % icb;
    if (f43) {
      const int64_t icc = ib_all / ic2, ib = ib_all % ic2;
      return ((((((occ * A + uh) * A + uw) * ic_chunks + icc) * oc2 + o2) * ic2 + ib) * icb + i) * ocb;
    }
    return (((int64_t(uh) * A + uw) * oc_chunks + occ) * nb_ic + ib_all) * (int64_t(oc2) * icb * ocb) +
           (i * oc2 + o2) * ocb;
  };
  const DType dt = w.dtype();
  const char* src = static_cast<const char*>(w.raw());
  const size_t es = dtype_size(dt), row = size_t(C) * 9;
#pragma omp parallel
  {
    std::vector<float> rows(size_t(ocb) * row);
#pragma omp for schedule(static)
    for (int64_t ob = 0; ob < nb_oc; ++ob) {
      // The block's output channels as float32 rows (zeros past O).
      for (int o = 0; o < ocb; ++o) {
        const int64_t oc = ob * ocb + o;
        float* r = rows.data() + size_t(o) * row;
        if (oc >= O) {
          std::fill(r, r + row, 0.f);
          continue;
        }
        const void* s = src + size_t(oc) * row * es;
        if (dt == DType::F16) simd::f16_to_f32(static_cast<const uint16_t*>(s), r, row);
        else if (dt == DType::BF16) simd::bf16_to_f32(static_cast<const uint16_t*>(s), r, row);
        else std::memcpy(r, s, row * sizeof(float));
      }
#ifdef PIG_HAVE_AVX512_SCATTER
      if (ocb == 16 && cpu_has_avx512f()) {
        winograd_block16(rows.data(), row, C, IC, G, A, out,
                         [&](int64_t c, int uh, int uw) { return offset(ob, c, uh, uw); });
        continue;
      }
#endif
      for (int64_t c = 0; c < IC; ++c) {
        float k[9][64], t[3][6][64], u[64];
        for (int o = 0; o < ocb; ++o)
          for (int e = 0; e < 9; ++e) k[e][o] = c < C ? rows[size_t(o) * row + size_t(c) * 9 + e] : 0.f;
        for (int kh = 0; kh < 3; ++kh)  // t = g·Gᵀ along the kernel's width
          for (int j = 0; j < A; ++j)
            for (int o = 0; o < ocb; ++o)
              t[kh][j][o] = k[kh * 3][o] * G[j][0] + k[kh * 3 + 1][o] * G[j][1] + k[kh * 3 + 2][o] * G[j][2];
        for (int i = 0; i < A; ++i)  // U = G·t along its height
          for (int j = 0; j < A; ++j) {
            for (int o = 0; o < ocb; ++o) u[o] = G[i][0] * t[0][j][o] + G[i][1] * t[1][j][o] + G[i][2] * t[2][j][o];
            std::memcpy(out + offset(ob, c, i, j), u, size_t(ocb) * sizeof(float));
          }
      }
    }
  }
  return true;
}
}  // namespace

bool set_simd_weight_prep(bool on) {
#ifdef PIG_HAVE_AVX512_SCATTER
  g_simd_weight_prep = on;
  return cpu_has(Isa::Avx512);
#else
  return false;
#endif
}

namespace {
// How a dense weight maps onto a blocked layout: its rows (the source's outermost dim) and, for one row's elements in
// source order, their destination offsets; a destination offset is row_off[r] + in_row[j] (plus D.offset0).
struct RowPlan {
  int outer = 0;
  int64_t rows = 0, row_len = 0;
  int64_t run[6] = {};  // distance in a source row between neighbours along each dim but the outer one
  std::vector<int64_t> row_off, in_row;
  bool padded = false;
};
bool plan_rows(const Tensor& w, const dnnl_memory_desc_t& P, const dnnl_memory_desc_t& D, RowPlan& pl) {
  if (w.dtype() != DType::F32 && w.dtype() != DType::F16 && w.dtype() != DType::BF16) return false;
  const int nd = D.ndims;
  if (nd < 1 || nd != P.ndims || nd > 6) return false;
  int64_t numel = 1;
  for (int d = 0; d < nd; ++d) {
    if (D.dims[d] != P.dims[d] || D.padded_offsets[d] != 0 || D.dims[d] <= 0) return false;
    numel *= D.dims[d];
  }
  if (numel != w.numel()) return false;
  // Source: a dense array; its dims from the largest stride down. The outermost one (rows) is split over threads.
  int order[6];
  for (int d = 0; d < nd; ++d) order[d] = d;
  std::stable_sort(order, order + nd, [&](int a, int b) {
    return P.format_desc.blocking.strides[a] > P.format_desc.blocking.strides[b];
  });
  int64_t expect = 1;
  for (int i = nd - 1; i >= 0; --i) {
    const int d = order[i];
    if (D.dims[d] > 1 && P.format_desc.blocking.strides[d] != expect) return false;
    expect *= D.dims[d];
  }
  // Destination offset of index i along dim d; a blocked layout's offset is a sum of one such term per dim.
  const dnnl_blocking_desc_t& B = D.format_desc.blocking;
  auto table = [&](int d) {
    int64_t blk = 1;
    for (int k = 0; k < B.inner_nblks; ++k)
      if (B.inner_idxs[k] == d) blk *= B.inner_blks[k];
    std::vector<int64_t> t(size_t(D.dims[d]));
    for (int64_t i = 0; i < D.dims[d]; ++i) {
      int64_t off = (i / blk) * B.strides[d], rem = i % blk;
      for (int k = 0; k < B.inner_nblks; ++k) {
        if (B.inner_idxs[k] != d) continue;
        int64_t later_same = 1, inner_stride = 1;
        for (int j = k + 1; j < B.inner_nblks; ++j) {
          inner_stride *= B.inner_blks[j];
          if (B.inner_idxs[j] == d) later_same *= B.inner_blks[j];
        }
        off += ((rem / later_same) % B.inner_blks[k]) * inner_stride;
      }
      t[size_t(i)] = off;
    }
    return t;
  };
  const int outer = order[0];
  const int64_t rows = D.dims[outer], row_len = numel / rows;
  pl.outer = outer;
  pl.rows = rows;
  pl.row_len = row_len;
  pl.row_off = table(outer);
  // Offsets of one source row's elements (the other dims, in source order), flattened.
  std::vector<int64_t>& in_row = pl.in_row;
  in_row.assign(size_t(row_len), 0);
  for (int64_t run = 1, i = nd - 1; i >= 1; --i) {
    const int d = order[i];
    const std::vector<int64_t> t = table(d);
    for (int64_t r = 0; r < row_len; ++r) in_row[size_t(r)] += t[size_t((r / run) % D.dims[d])];
    pl.run[d] = run;
    run *= D.dims[d];
  }
  pl.padded = false;
  for (int d = 0; d < nd; ++d) pl.padded |= D.padded_dims[d] != D.dims[d];
  return true;
}
}  // namespace

bool convert_to_blocked(const Tensor& w, const dnnl::memory::desc& plain, const dnnl::memory::desc& want, void* dst) {
  const dnnl_memory_desc_t& P = plain.data;
  const dnnl_memory_desc_t& D = want.data;
  if (D.format_kind == dnnl_format_kind_wino && P.format_kind == dnnl_blocked)
    return P.ndims == 4 && w.numel() == P.dims[0] * P.dims[1] * P.dims[2] * P.dims[3] &&
           convert_to_winograd(w, P, D, dst);
  if (D.format_kind != dnnl_blocked || P.format_kind != dnnl_blocked || D.data_type != dnnl_f32 ||
      D.extra.flags != 0 || P.format_desc.blocking.inner_nblks != 0)
    return false;
  RowPlan plan;
  if (!plan_rows(w, P, D, plan)) return false;
  const int outer = plan.outer;
  const int64_t rows = plan.rows, row_len = plan.row_len;
  const std::vector<int64_t>& row_off = plan.row_off;
  const std::vector<int64_t>& in_row = plan.in_row;
  const bool padded = plan.padded;
  const int64_t numel = rows * row_len;
  const dnnl_blocking_desc_t& B = D.format_desc.blocking;
  float* out = static_cast<float*>(dst) + D.offset0;
  if (padded) std::memset(dst, 0, want.get_size());
  const DType dt = w.dtype();
  const char* src = static_cast<const char*>(w.raw());
  const size_t es = dtype_size(dt);
  const int64_t* off = in_row.data();
  // Rows go in groups of the outer dim's block: in the blocked layout a group's values for one position of the
  // other dims usually sit side by side, so the stores run along cache lines while the loads jump between the
  // group's rows (converted to float32 in a buffer that stays in L2).
  int64_t group = 1;
  for (int k = 0; k < B.inner_nblks; ++k)
    if (B.inner_idxs[k] == outer) group *= B.inner_blks[k];
  while (group > 1 && group * row_len * int64_t(sizeof(float)) > (int64_t(1) << 21)) group /= 2;
  const int64_t groups = (rows + group - 1) / group;
#pragma omp parallel if (numel > (1 << 16))
  {
    std::vector<float> buf;  // only for groups the AVX-512 scatter does not take
#pragma omp for schedule(static)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t r0 = g * group, n = std::min(group, rows - r0);
      const void* first = src + size_t(r0 * row_len) * es;
      const size_t count = size_t(n * row_len);
#ifdef PIG_HAVE_AVX512_SCATTER
      bool contiguous_rows = true;
      for (int64_t r = 1; r < n; ++r) contiguous_rows &= row_off[size_t(r0 + r)] == row_off[size_t(r0)] + r;
      int64_t n16 = 0, j16 = 0;
      if (contiguous_rows && scatter_group_avx512(dt, static_cast<const char*>(first), row_len, n,
                                                  out + row_off[size_t(r0)], off, &n16, &j16)) {
        // What whole tiles left: the last columns of every row, then the last rows.
        float* o = out + row_off[size_t(r0)];
        const char* s0 = static_cast<const char*>(first);
        for (int64_t r = 0; r < n; ++r)
          for (int64_t j = r < n16 ? j16 : 0; j < row_len; ++j)
            o[off[j] + r] = element_f32(dt, s0 + size_t(r * row_len + j) * es);
        continue;
      }
#endif
      buf.resize(size_t(group * row_len));
      if (dt == DType::F16) simd::f16_to_f32(static_cast<const uint16_t*>(first), buf.data(), count);
      else if (dt == DType::BF16) simd::bf16_to_f32(static_cast<const uint16_t*>(first), buf.data(), count);
      else std::memcpy(buf.data(), first, count * sizeof(float));
      const float* f = buf.data();
      bool contiguous = true;
      for (int64_t r = 1; r < n; ++r) contiguous &= row_off[size_t(r0 + r)] == row_off[size_t(r0)] + r;
      if (contiguous) {
        float* o = out + row_off[size_t(r0)];
        for (int64_t j = 0; j < row_len; ++j) {
          float* d = o + off[j];
          for (int64_t r = 0; r < n; ++r) d[r] = f[r * row_len + j];
        }
      } else {
        for (int64_t r = 0; r < n; ++r) {
          float* o = out + row_off[size_t(r0 + r)];
          for (int64_t j = 0; j < row_len; ++j) o[off[j]] = f[r * row_len + j];
        }
      }
    }
  }
  return true;
}

namespace {
// float32 → bfloat16, round to nearest even; NaN stays NaN (quiet). The same rule as fast::to_bf16.
inline uint16_t bf16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return (x & 0x7fffffffu) > 0x7f800000u ? uint16_t((x >> 16) | 0x40) : uint16_t((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

#ifdef PIG_HAVE_AVX512_SCATTER
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// bf16_bits in 16 lanes (the result in each lane's low half).
__attribute__((target("avx512f"))) inline __m512i bf16_bits16(__m512 f) {
  const __m512i x = _mm512_castps_si512(f);
  const __m512i hi = _mm512_srli_epi32(x, 16);
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1)))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_mov_epi32(rounded, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
}

// One group of 16 rows whose values for one source element sit at stride 2 at the destination, interleaved with the
// pair partner (the element `pair` further along the row, one place further at the destination): the VNNI layouts
// of the bf16 kernels ("...16a2b"). The rows are transposed into `t` (row_len x 16 floats, exact), then each pair of
// columns is rounded and stored as one 64-byte run.
template <DType dt>
__attribute__((target("avx512f"))) void bf16_pairs16(const char* src, int64_t row_len, const int64_t* off,
                                                     const int32_t* starts, size_t nstarts, int64_t pair,
                                                     int64_t chunk, float* t, uint16_t* out) {
  constexpr size_t es = dt == DType::F32 ? 4 : 2;
  // Chunks of the row (a multiple of 16 and of 2·pair long, so that a pair never straddles two) keep t in L2.
  size_t s = 0;
  for (int64_t c0 = 0; c0 < row_len; c0 += chunk) {
    const int64_t c1 = std::min(row_len, c0 + chunk), j16 = c0 + (c1 - c0) / 16 * 16;
    for (int64_t j = c0; j < j16; j += 16) {
      __m512 v[16];
      for (int r = 0; r < 16; ++r) v[r] = load16<dt>(src + size_t(r * row_len + j) * es);
      transpose16(v);
      for (int k = 0; k < 16; ++k) _mm512_storeu_ps(t + (j - c0 + k) * 16, v[k]);
    }
    for (int64_t j = j16; j < c1; ++j)
      for (int r = 0; r < 16; ++r) t[(j - c0) * 16 + r] = element_f32(dt, src + size_t(r * row_len + j) * es);
    for (; s < nstarts && starts[s] < c1; ++s) {
      const int64_t j = starts[s], l = j - c0;
      const __m512i a = bf16_bits16(_mm512_loadu_ps(t + l * 16)), b = bf16_bits16(_mm512_loadu_ps(t + (l + pair) * 16));
      _mm512_storeu_si512(out + off[j], _mm512_or_si512(a, _mm512_slli_epi32(b, 16)));
    }
  }
}
#pragma GCC diagnostic pop
#endif
}  // namespace

bool convert_to_blocked_bf16(const Tensor& w, const dnnl::memory::desc& plain, const dnnl::memory::desc& want,
                             void* dst, bool vector_only) {
  const dnnl_memory_desc_t& P = plain.data;
  const dnnl_memory_desc_t& D = want.data;
  if (D.format_kind != dnnl_blocked || P.format_kind != dnnl_blocked || D.data_type != dnnl_bf16 ||
      D.extra.flags != 0 || P.format_desc.blocking.inner_nblks != 0)
    return false;
  RowPlan plan;
  if (!plan_rows(w, P, D, plan)) return false;
  const int64_t rows = plan.rows, row_len = plan.row_len;
  const int64_t* off = plan.in_row.data();
  const std::vector<int64_t>& row_off = plan.row_off;
  uint16_t* out = static_cast<uint16_t*>(dst) + D.offset0;
  const DType dt = w.dtype();
  const char* src = static_cast<const char*>(w.raw());
  const size_t es = dtype_size(dt);
  const dnnl_blocking_desc_t& B = D.format_desc.blocking;
  // The VNNI pair: the innermost block, 2 along a dim other than the rows'. Its first elements in a row.
  int64_t pair = 0;
  std::vector<int32_t> starts;
  if (B.inner_nblks >= 2 && B.inner_blks[B.inner_nblks - 1] == 2) {
    const int d = B.inner_idxs[B.inner_nblks - 1];
    if (d != plan.outer && D.dims[d] % 2 == 0 && row_len < (int64_t(1) << 31)) {
      pair = plan.run[d];
      starts.reserve(size_t(row_len / 2));
      for (int64_t j = 0; j < row_len; ++j)
        if ((j / pair) % D.dims[d] % 2 == 0) starts.push_back(int32_t(j));
    }
  }
  // The row is taken in chunks whose transposed form (64 bytes per element) stays in L2: a multiple of 16 and of
  // 2·pair elements, about 1024.
  int64_t chunk = row_len;
  if (pair > 0) {
    const int64_t unit = std::lcm<int64_t>(16, 2 * pair);
    chunk = std::max<int64_t>(1, 1024 / unit) * unit;
  }
  const int64_t groups = (rows + 15) / 16;
  if (vector_only) {  // whether the AVX-512 loop takes (nearly) every group
#ifdef PIG_HAVE_AVX512_SCATTER
    bool ok = pair > 0 && rows >= 16 && cpu_has_avx512f();
    for (int64_t r = 1; ok && r < 16; ++r) ok = row_off[size_t(r)] == row_off[0] + 2 * r;
    if (!ok) return false;
#else
    return false;
#endif
  }
  if (plan.padded) std::memset(dst, 0, want.get_size());
#pragma omp parallel if (rows * row_len > (1 << 16))
  {
    thread_local std::vector<float> t;
#pragma omp for schedule(static)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t r0 = g * 16, n = std::min<int64_t>(16, rows - r0);
      const char* first = src + size_t(r0 * row_len) * es;
#ifdef PIG_HAVE_AVX512_SCATTER
      bool stride2 = pair > 0 && n == 16 && cpu_has_avx512f();
      for (int64_t r = 1; stride2 && r < n; ++r) stride2 = row_off[size_t(r0 + r)] == row_off[size_t(r0)] + 2 * r;
      if (stride2) {
        if (t.size() < size_t(chunk * 16)) t.resize(size_t(chunk * 16));
        uint16_t* o = out + row_off[size_t(r0)];
        const int32_t* st = starts.data();
        const size_t ns = starts.size();
        if (dt == DType::F16) bf16_pairs16<DType::F16>(first, row_len, off, st, ns, pair, chunk, t.data(), o);
        else if (dt == DType::BF16) bf16_pairs16<DType::BF16>(first, row_len, off, st, ns, pair, chunk, t.data(), o);
        else bf16_pairs16<DType::F32>(first, row_len, off, st, ns, pair, chunk, t.data(), o);
        continue;
      }
#endif
      for (int64_t r = 0; r < n; ++r) {
        uint16_t* o = out + row_off[size_t(r0 + r)];
        const char* s = first + size_t(r * row_len) * es;
        for (int64_t j = 0; j < row_len; ++j) o[off[j]] = bf16_bits(element_f32(dt, s + size_t(j) * es));
      }
    }
  }
  return true;
}

dnnl::convolution_forward::primitive_desc conv_primitive_desc(const dnnl::convolution_forward::desc& desc,
                                                              bool residual, bool* fused) {
  for (bool fuse : {residual, false}) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (fuse) {
      dnnl::post_ops po;
      po.append_sum(1.f);
      attr.set_post_ops(po);
    }
    try {
      dnnl::convolution_forward::primitive_desc pd(desc, attr, engine());
      *fused = fuse;
      // oneDNN lists its F(2,3) Winograd kernel first and takes it for many shapes (all of 64 and 128 channels up to
      // 512x512 here) although its F(4,3) kernel does fewer multiplies per output: 128->128 at 512x512 250 -> 190 ms
      // (docs/performance.md). Take F(4,3) where oneDNN has it for the shape and the output has at least 32x32
      // pixels (at 8x8, 1280 channels, F(4,3) is 2.7x slower than F(2,3)); an image and its bands (conv2d_bands.h)
      // then get the same kernel, which oneDNN's own choice often did not give them.
      auto is = [](const dnnl::convolution_forward::primitive_desc& d, const char* kernel) {
        return std::string(d.impl_info_str()).find(kernel) != std::string::npos;
      };
      const dnnl::memory::dims out = pd.dst_desc().dims();
      if (out.size() == 4 && out[2] * out[3] >= 32 * 32 && is(pd, "wino_2x3")) {
        dnnl::convolution_forward::primitive_desc alt(desc, attr, engine());  // a second walk of the same list
        while (!is(alt, "wino_4x3") && alt.next_impl()) {
        }
        if (is(alt, "wino_4x3")) return alt;
      }
      return pd;
    } catch (const dnnl::error&) {
      if (!fuse) throw;
    }
  }
  throw dnnl::error(dnnl_unimplemented, "convolution");  // not reached: the unfused try rethrows
}

dnnl::memory work_memory(const dnnl::memory::desc& md, std::shared_ptr<void>& holder) {
  holder = allocate(md.get_size());
  return dnnl::memory(md, engine(), holder.get());
}

void append_activation(dnnl::post_ops& po, Activation a) {
  switch (a) {
    case Activation::None: return;
    case Activation::Silu: po.append_eltwise(1.f, dnnl::algorithm::eltwise_swish, 1.f, 0.f); return;
    case Activation::QuickGelu: po.append_eltwise(1.f, dnnl::algorithm::eltwise_swish, 1.702f, 0.f); return;
    case Activation::Gelu: po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f); return;
    case Activation::GeluTanh: po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_tanh, 0.f, 0.f); return;
  }
}

void map_released_pages(const Tensor& w) {
  if (g_release_pages.load()) populate_file_pages(w.raw(), w.nbytes());
}

}  // namespace onednn
}  // namespace pigment::ops
