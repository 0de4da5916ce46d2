#include "core/file_pages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <shared_mutex>

namespace pigment {

namespace {
struct Registry {
  std::shared_mutex mu;
  std::map<uintptr_t, size_t> ranges;  // begin → size
  std::atomic<size_t> dropped{0};
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: mappings may be released during static destruction
  return *r;
}
}  // namespace

void register_file_mapping(const void* data, size_t size) {
  if (!data || !size) return;
  std::unique_lock lock(registry().mu);
  registry().ranges[reinterpret_cast<uintptr_t>(data)] = size;
}

void unregister_file_mapping(const void* data) {
  std::unique_lock lock(registry().mu);
  registry().ranges.erase(reinterpret_cast<uintptr_t>(data));
}

namespace {
// The whole pages of [p, p + n) when they lie inside one registered mapping, given to f(start, length) under the
// registry's shared lock (the mapping cannot be unregistered and unmapped meanwhile); false where they do not.
template <typename F>
bool with_file_pages(const void* p, size_t n, F&& f) {
  if (!p || !n) return false;
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096);
  Registry& r = registry();
  const uintptr_t b = reinterpret_cast<uintptr_t>(p), e = b + n;
  std::shared_lock lock(r.mu);
  auto it = r.ranges.upper_bound(b);
  if (it == r.ranges.begin()) return false;
  --it;
  const uintptr_t mb = it->first, me = mb + it->second;
  if (b < mb || e > me) return false;
  // Whole pages only; pages shared with neighbouring tensors are included, which is harmless (read-only file
  // pages come back on the next access), but never beyond the mapping.
  const uintptr_t pb = b & ~(page - 1), pe = std::min(me, (e + page - 1) & ~(page - 1));
  if (pe <= pb) return false;
  return f(reinterpret_cast<void*>(pb), size_t(pe - pb));
}
}  // namespace

bool drop_file_pages(const void* p, size_t n) {
  return with_file_pages(p, n, [](void* start, size_t len) {
    if (madvise(start, len, MADV_DONTNEED) != 0) return false;
    registry().dropped += len;
    return true;
  });
}

bool populate_file_pages(const void* p, size_t n) {
#ifdef MADV_POPULATE_READ
  return with_file_pages(p, n, [](void* start, size_t len) { return madvise(start, len, MADV_POPULATE_READ) == 0; });
#else
  (void)p, (void)n;
  return false;
#endif
}

bool in_file_mapping(const void* p, size_t n) {
  if (!p) return false;
  const uintptr_t b = reinterpret_cast<uintptr_t>(p), e = b + n;
  Registry& r = registry();
  std::shared_lock lock(r.mu);
  auto it = r.ranges.upper_bound(b);
  if (it == r.ranges.begin()) return false;
  --it;
  return b >= it->first && e <= it->first + it->second;
}

size_t dropped_file_page_bytes() { return registry().dropped.load(); }

}  // namespace pigment
