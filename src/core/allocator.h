// Memory for tensors. Small blocks come from malloc. Blocks of 32 MiB and more (beyond what malloc keeps in its heap,
// so each would be a fresh mapping costing a page fault per 4 KiB: ~25 ms per 42 MiB here) are mapped directly,
// backed by transparent huge pages where the kernel allows it, and when freed they are kept in a bounded cache for
// reuse: a sampler repeats the same shapes every step. The cache holds at most $PIGMENT_ALLOC_CACHE_MB megabytes
// (default 256: enough for a UNet step's repeated shapes; more only raises peak RSS) and can be emptied.
#pragma once
#include <cstddef>
#include <memory>

namespace pigment {

// At least `bytes` of uninitialised memory, 64-byte aligned; freed when the last owner lets go. Throws on failure.
std::shared_ptr<void> allocate(size_t bytes);

// Returns every cached free block to the system.
void release_cached_memory();
// Bytes held in the cache of free large blocks.
size_t cached_memory_bytes();
// Upper bound of that cache (0 disables it).
void set_allocation_cache_limit(size_t bytes);

}  // namespace pigment
