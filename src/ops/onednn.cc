// oneDNN engine, per-thread streams, the primitive cache and the weight cache.
#include "ops/onednn.h"

#include <omp.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "ops/simd_kernels.h"

namespace pigment::ops {

namespace onednn {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

dnnl::memory scratchpad(const dnnl::memory::desc& md) {
  thread_local std::unique_ptr<char, decltype(&std::free)> buf(nullptr, &std::free);
  thread_local size_t size = 0;
  size_t need = md.get_size();
  if (need > size) {
    size_t bytes = (need + 4095) / 4096 * 4096;
    buf.reset(static_cast<char*>(std::aligned_alloc(4096, bytes)));
    PIG_CHECK(buf, "out of memory allocating ", bytes, " bytes of oneDNN scratchpad");
    size = bytes;
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
uint64_t fingerprint(const Tensor& w) {
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

dnnl::memory prepare_now(const Tensor& w, const dnnl::memory::desc& plain, const dnnl::memory::desc& want) {
  Tensor f;
  const void* src = w.raw();
  if (w.dtype() != DType::F32) {
    f = Tensor::empty(w.shape());
    to_f32(w.dtype(), w.raw(), f.f32(), size_t(w.numel()));
    src = f.raw();
  }
  dnnl::memory out(want, engine());
  dnnl::memory in(plain, engine(), const_cast<void*>(src));
  if (plain == want) {
    std::memcpy(out.get_data_handle(), src, want.get_size());
  } else {
    dnnl::reorder(in, out).execute(stream(), in, out);
    stream().wait();
  }
  return out;
}

size_t default_budget() {
  if (const char* e = std::getenv("PIGMENT_WEIGHT_CACHE_MB")) {
    char* end = nullptr;
    unsigned long long mb = std::strtoull(e, &end, 10);
    PIG_CHECK(end && *end == 0 && mb > 0, "PIGMENT_WEIGHT_CACHE_MB: expected a positive number of megabytes, got '", e,
              "'");
    return size_t(mb) << 20;
  }
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return size_t(4) << 30;
  return size_t(pages) * size_t(page) / 2;
}
}  // namespace

}  // namespace onednn

struct WeightCache::Impl {
  struct Entry {
    const void* data;
    Shape shape;
    DType dtype;
    std::weak_ptr<const void> owner;
    uint64_t fingerprint;
    dnnl::memory::desc layout;
    dnnl::memory mem;
    size_t bytes;
    uint64_t last_use;
  };
  mutable std::mutex mu;
  std::unordered_multimap<const void*, Entry> map;
  size_t budget = 0;
  size_t bytes = 0;
  uint64_t clock = 0;

  static bool same_owner(const std::weak_ptr<const void>& a, const std::shared_ptr<const void>& b) {
    return !a.owner_before(b) && !b.owner_before(a);
  }
  void erase(std::unordered_multimap<const void*, Entry>::iterator it) {
    bytes -= it->second.bytes;
    map.erase(it);
  }
  void sweep_dead() {
    for (auto it = map.begin(); it != map.end();) {
      if (it->second.owner.expired()) {
        bytes -= it->second.bytes;
        it = map.erase(it);
      } else {
        ++it;
      }
    }
  }
  void evict_to_budget(const void* keep_data, const dnnl::memory::desc* keep_layout) {
    while (bytes > budget && !map.empty()) {
      auto victim = map.end();
      for (auto it = map.begin(); it != map.end(); ++it) {
        if (it->first == keep_data && keep_layout && it->second.layout == *keep_layout) continue;
        if (victim == map.end() || it->second.last_use < victim->second.last_use) victim = it;
      }
      if (victim == map.end()) break;
      erase(victim);
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
}

void WeightCache::forget(const Tensor& w) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto range = impl_->map.equal_range(w.raw());
  for (auto it = range.first; it != range.second;) {
    auto next = std::next(it);
    impl_->erase(it);
    it = next;
  }
}

void WeightCache::set_budget(size_t bytes) {
  PIG_CHECK(bytes > 0, "WeightCache::set_budget: the budget must be positive");
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->budget = bytes;
  impl_->evict_to_budget(nullptr, nullptr);
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
  return impl_->map.size();
}

WeightCache& default_weight_cache() {
  static WeightCache* c = new WeightCache();  // never destroyed: outlives every model
  return *c;
}

namespace onednn {

dnnl::memory prepared(WeightCache* cache, const Tensor& w, const dnnl::memory::desc& plain,
                      const dnnl::memory::desc& want) {
  if (!w.owner()) return prepare_now(w, plain, want);
  WeightCache::Impl& c = (cache ? *cache : default_weight_cache()).impl();
  uint64_t fp = fingerprint(w);
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto range = c.map.equal_range(w.raw());
    for (auto it = range.first; it != range.second;) {
      auto next = std::next(it);
      WeightCache::Impl::Entry& e = it->second;
      if (e.owner.expired() || !WeightCache::Impl::same_owner(e.owner, w.owner())) {
        c.erase(it);  // memory of a freed weight, now reused
      } else if (e.shape == w.shape() && e.dtype == w.dtype()) {
        if (e.fingerprint != fp) {
          c.erase(it);  // rewritten in place
        } else if (e.layout == want) {
          e.last_use = ++c.clock;
          return e.mem;
        }
      }
      it = next;
    }
  }
  dnnl::memory mem = prepare_now(w, plain, want);
  std::lock_guard<std::mutex> lock(c.mu);
  c.sweep_dead();
  size_t bytes = want.get_size();
  c.map.emplace(w.raw(), WeightCache::Impl::Entry{w.raw(), w.shape(), w.dtype(), w.owner(), fp, want, mem, bytes,
                                                 ++c.clock});
  c.bytes += bytes;
  c.evict_to_budget(w.raw(), &want);
  if (c.bytes > c.budget) c.evict_to_budget(nullptr, nullptr);  // the new one alone is over budget
  return mem;
}

}  // namespace onednn
}  // namespace pigment::ops
