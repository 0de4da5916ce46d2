#include "core/allocator.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "core/error.h"

namespace pigment {

namespace {
constexpr size_t kPooled = size_t(256) << 10;  // smaller blocks come from malloc
constexpr size_t kLarge = size_t(32) << 20;    // malloc's largest heap allocation on 64-bit glibc
constexpr size_t kGrain = size_t(64) << 10;    // pool block sizes are multiples of this
constexpr size_t kHuge = size_t(2) << 20;      // transparent huge page
constexpr size_t kSegment = size_t(1) << 30;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// A 2 MiB-aligned mapping of `size` bytes (a multiple of 2 MiB), or nullptr.
char* map_aligned(size_t size) {
  void* raw = mmap(nullptr, size + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  auto base = reinterpret_cast<uintptr_t>(raw);
  uintptr_t aligned = (base + kHuge - 1) & ~(uintptr_t(kHuge) - 1);
  if (aligned > base) munmap(raw, aligned - base);
  if (base + kHuge > aligned) munmap(reinterpret_cast<void*>(aligned + size), base + kHuge - aligned);
  madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);  // a hint: fine if the kernel says no
  return reinterpret_cast<char*>(aligned);
}

// Best fit among free blocks (by size, then address); free neighbours within a segment merge.
class Pool {
 public:
  Pool() : limit_(initial_limit()) {}

  // $PIGMENT_ALLOC_CACHE_MB megabytes, else unbounded.
  static size_t initial_limit() {
    if (const char* e = std::getenv("PIGMENT_ALLOC_CACHE_MB")) {
      char* end = nullptr;
      unsigned long long mb = std::strtoull(e, &end, 10);
      if (end && *end == 0) return size_t(mb) << 20;
    }
    return SIZE_MAX;
  }

  bool serves(size_t bytes) const { return bytes >= (limit_.load(std::memory_order_relaxed) ? kPooled : kLarge); }

  char* take(size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    auto fit = by_size_.lower_bound({size, nullptr});
    if (fit == by_size_.end()) {
      const size_t seg = limit_ ? std::max(kSegment, round_up(size, kHuge)) : round_up(size, kHuge);
      char* base = map_aligned(seg);
      if (!base) {
        unmap_empty_segments();  // free segments may be what stands in the way
        base = map_aligned(seg);
      }
      if (!base) return nullptr;
      segments_.emplace(base, Segment{seg, 0});
      mapped_ += seg;
      add_free(base, seg);
      fit = by_size_.find({seg, base});
    }
    const auto [have, p] = *fit;
    remove_free(p, have);
    if (have > size) add_free(p + size, have - size);
    segment_of(p).live += size;
    return p;
  }

  void give_back(char* p, size_t size) {
    std::lock_guard<std::mutex> lock(mu_);
    auto seg = std::prev(segments_.upper_bound(p));
    seg->second.live -= size;
    char* start = p;
    size_t len = size;
    auto next = p + size < seg->first + seg->second.size ? by_addr_.find(p + size) : by_addr_.end();
    if (next != by_addr_.end()) {  // blocks never cross segments (another segment may begin where this one ends)
      len += next->second;
      remove_free(next->first, next->second);
    }
    auto after = by_addr_.upper_bound(p);
    if (after != by_addr_.begin()) {
      auto prev = std::prev(after);
      if (prev->first + prev->second == p && prev->first >= seg->first) {
        start = prev->first;
        len += prev->second;
        remove_free(prev->first, prev->second);
      }
    }
    add_free(start, len);
    if (seg->second.live == 0 && free_bytes_ > limit_) unmap(seg);
  }

  void unmap_empty_segments() {
    for (auto it = segments_.begin(); it != segments_.end();) it = it->second.live == 0 ? unmap(it) : std::next(it);
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    unmap_empty_segments();
  }
  size_t free_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return free_bytes_;
  }
  size_t mapped_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return mapped_;
  }
  void set_limit(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    limit_ = bytes;
    if (free_bytes_ > limit_) unmap_empty_segments();
  }

 private:
  struct Segment {
    size_t size;
    size_t live;  // bytes of blocks in use
  };
  using Segments = std::map<char*, Segment>;

  Segment& segment_of(char* p) { return std::prev(segments_.upper_bound(p))->second; }
  void add_free(char* p, size_t n) {
    by_addr_.emplace(p, n);
    by_size_.emplace(n, p);
    free_bytes_ += n;
  }
  void remove_free(char* p, size_t n) {
    by_addr_.erase(p);
    by_size_.erase({n, p});
    free_bytes_ -= n;
  }
  // An empty segment is one free block.
  Segments::iterator unmap(Segments::iterator seg) {
    remove_free(seg->first, seg->second.size);
    munmap(seg->first, seg->second.size);
    mapped_ -= seg->second.size;
    return segments_.erase(seg);
  }

  std::mutex mu_;
  Segments segments_;
  std::map<char*, size_t> by_addr_;
  std::set<std::pair<size_t, char*>> by_size_;
  size_t free_bytes_ = 0;
  size_t mapped_ = 0;
  std::atomic<size_t> limit_;  // read without the lock by serves()
};

Pool& pool() {
  static Pool* p = new Pool;  // never destroyed: tensors may be freed during static destruction
  return *p;
}
}  // namespace

std::shared_ptr<void> allocate(size_t bytes) {
  if (!pool().serves(bytes)) {
    size_t n = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, n ? n : 64);
    if (!p) fail("out of memory allocating ", n, " bytes for a tensor");
    return std::shared_ptr<void>(p, std::free);
  }
  const size_t size = round_up(bytes, kGrain);
  char* p = pool().take(size);
  if (!p) fail("out of memory allocating ", size, " bytes for a tensor");
  return std::shared_ptr<void>(p, [size](void* q) { pool().give_back(static_cast<char*>(q), size); });
}

void release_cached_memory() { pool().release(); }
size_t cached_memory_bytes() { return pool().free_bytes(); }
size_t pooled_memory_bytes() { return pool().mapped_bytes(); }
void set_allocation_cache_limit(size_t bytes) { pool().set_limit(bytes); }
void reset_allocation_cache_limit() { pool().set_limit(Pool::initial_limit()); }

}  // namespace pigment
