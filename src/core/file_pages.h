// Read-only file mappings (checkpoints) register here, so that code holding a view into one can hand its pages back
// to the kernel once it has consumed them: the pages stay in the page cache (nothing is lost, the next access maps
// them again) but stop counting in the process's resident set. Memory that is not part of a registered file mapping
// is never touched (dropping anonymous pages would lose their contents).
#pragma once
#include <cstddef>

namespace pigment {

// [data, data + size) is a read-only mapping of a file (MappedFile registers itself; unregister before munmap).
void register_file_mapping(const void* data, size_t size);
void unregister_file_mapping(const void* data);

// Unmaps the whole pages of [p, p + n) when that range lies inside one registered file mapping (madvise
// MADV_DONTNEED). Returns whether it did; memory of any other kind is left alone.
bool drop_file_pages(const void* p, size_t n);

// Maps the pages of [p, p + n) in one system call (madvise MADV_POPULATE_READ) when that range lies inside one
// registered file mapping, instead of a page fault per few pages on first touch — before converting a weight whose
// pages were given back (measured on a 26 MB f16 weight: mapping 12 ms by faults against 0.9 ms; its conversion from
// DRAM 13.5 → 11.2 ms, docs/performance.md). Returns whether it did (false on kernels before 5.14, or for memory of
// any other kind; the pages then fault in on access as before).
bool populate_file_pages(const void* p, size_t n);

// Whether [p, p + n) lies inside one registered (read-only) file mapping: such memory cannot change in place.
bool in_file_mapping(const void* p, size_t n);

// Bytes dropped so far (statistics for benchmarks and tests).
size_t dropped_file_page_bytes();

}  // namespace pigment
