#include "core/allocator.h"

#include <sys/mman.h>

#include <cstdlib>
#include <list>
#include <mutex>

#include "core/error.h"

namespace pigment {

namespace {
constexpr size_t kLarge = size_t(32) << 20;  // malloc's largest heap allocation on 64-bit glibc
constexpr size_t kHuge = size_t(2) << 20;    // transparent huge page

struct LargeCache {
  std::mutex mu;
  std::list<std::pair<size_t, void*>> blocks;  // most recently freed first
  size_t bytes = 0;
  size_t limit = 0;
  LargeCache() {
    limit = size_t(256) << 20;
    if (const char* e = std::getenv("PIGMENT_ALLOC_CACHE_MB")) {
      char* end = nullptr;
      unsigned long long mb = std::strtoull(e, &end, 10);
      if (end && *end == 0) limit = size_t(mb) << 20;
    }
  }
};
LargeCache& cache() {
  static LargeCache* c = new LargeCache;  // never destroyed: tensors may be freed during static destruction
  return *c;
}

// A 2 MiB-aligned mapping of `size` bytes (a multiple of 2 MiB), or nullptr.
void* map_large(size_t size) {
  void* raw = mmap(nullptr, size + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  auto base = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (base + kHuge - 1) & ~(uintptr_t(kHuge) - 1);
  if (aligned > base) munmap(raw, aligned - base);
  if (base + kHuge > aligned) munmap(reinterpret_cast<void*>(aligned + size), base + kHuge - aligned);
  madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);  // a hint: fine if the kernel says no
  return reinterpret_cast<void*>(aligned);
}

void free_large(void* p, size_t size) {
  LargeCache& c = cache();
  std::list<std::pair<size_t, void*>> evicted;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (size <= c.limit) {
      c.blocks.emplace_front(size, p);
      c.bytes += size;
      p = nullptr;
      while (c.bytes > c.limit) {
        c.bytes -= c.blocks.back().first;
        evicted.splice(evicted.end(), c.blocks, std::prev(c.blocks.end()));
      }
    }
  }
  if (p) munmap(p, size);
  for (auto& [s, q] : evicted) munmap(q, s);
}
}  // namespace

std::shared_ptr<void> allocate(size_t bytes) {
  if (bytes < kLarge) {
    size_t n = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, n ? n : 64);
    if (!p) fail("out of memory allocating ", n, " bytes for a tensor");
    return std::shared_ptr<void>(p, std::free);
  }
  const size_t size = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = nullptr;
  {
    LargeCache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    for (auto it = c.blocks.begin(); it != c.blocks.end(); ++it)
      if (it->first == size) {
        p = it->second;
        c.bytes -= size;
        c.blocks.erase(it);
        break;
      }
  }
  if (!p) p = map_large(size);
  if (!p) {
    release_cached_memory();  // the cache may be what stands in the way
    p = map_large(size);
  }
  if (!p) fail("out of memory allocating ", size, " bytes for a tensor");
  return std::shared_ptr<void>(p, [size](void* q) { free_large(q, size); });
}

void release_cached_memory() {
  LargeCache& c = cache();
  std::list<std::pair<size_t, void*>> all;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    all.swap(c.blocks);
    c.bytes = 0;
  }
  for (auto& [s, q] : all) munmap(q, s);
}

size_t cached_memory_bytes() {
  std::lock_guard<std::mutex> lock(cache().mu);
  return cache().bytes;
}

void set_allocation_cache_limit(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(cache().mu);
    cache().limit = bytes;
  }
  if (cached_memory_bytes() > bytes) release_cached_memory();
}

}  // namespace pigment
