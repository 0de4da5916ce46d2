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

bool drop_file_pages(const void* p, size_t n) {
  if (!p || !n) return false;
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE) > 0 ? sysconf(_SC_PAGESIZE) : 4096);
  Registry& r = registry();
  const uintptr_t b = reinterpret_cast<uintptr_t>(p), e = b + n;
  std::shared_lock lock(r.mu);  // held during madvise: the mapping cannot be unregistered and unmapped meanwhile
  auto it = r.ranges.upper_bound(b);
  if (it == r.ranges.begin()) return false;
  --it;
  const uintptr_t mb = it->first, me = mb + it->second;
  if (b < mb || e > me) return false;
  // Whole pages only; pages shared with neighbouring tensors are dropped too, which is harmless (read-only file
  // pages come back on the next access), but never beyond the mapping.
  const uintptr_t pb = b & ~(page - 1), pe = std::min(me, (e + page - 1) & ~(page - 1));
  if (pe <= pb) return false;
  if (madvise(reinterpret_cast<void*>(pb), pe - pb, MADV_DONTNEED) != 0) return false;
  r.dropped += pe - pb;
  return true;
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
