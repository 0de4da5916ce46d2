// Memory for tensors. Blocks under 256 KiB come from malloc. Larger ones come from a pool of 2 MiB-aligned mappings
// (segments of 128 MiB, or one of its own for a larger block) backed by transparent huge pages where the kernel
// allows it. A freed block goes back to the pool, where it merges with free neighbours and serves later blocks of
// any size: the pages stay resident, so the next phase of a pipeline (the VAE decode after the UNet, the next
// image's UNet after the decode) reuses memory already faulted in instead of fresh pages, which cost ≈ 2.4 s per GB
// at 4 KiB and ≈ 0.09 s at 2 MiB on these VMs (measured, AMD EPYC, 2026-12-07). The pool's peak is the largest
// set of blocks live at once, not the sum over phases.
// The free memory the pool keeps is bounded by $PIGMENT_ALLOC_CACHE_MB megabytes when set (else unbounded: the pool
// never holds more than was once live at the same time); segments with nothing live beyond the bound are unmapped.
// With a bound of 0 (low-memory mode) the pool serves only blocks of 32 MiB and more, one mapping each, unmapped
// when freed; smaller ones come from malloc.
#pragma once
#include <cstddef>
#include <memory>

namespace pigment {

// At least `bytes` of uninitialised memory, 64-byte aligned; freed when the last owner lets go. Throws on failure.
std::shared_ptr<void> allocate(size_t bytes);

// Unmaps every pool segment with no live block.
void release_cached_memory();
// Bytes the pool holds mapped but free.
size_t cached_memory_bytes();
// Bytes the pool holds mapped, free or live.
size_t pooled_memory_bytes();
// Upper bound of the pool's free memory (0: low-memory behaviour, above).
void set_allocation_cache_limit(size_t bytes);
// Back to the bound at start ($PIGMENT_ALLOC_CACHE_MB, else unbounded).
void reset_allocation_cache_limit();

}  // namespace pigment
