#include "pipelines/memory_mode.h"

#include <algorithm>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/allocator.h"
#include "ops/fast_products.h"
#include "ops/ops.h"

namespace pigment {

void use_low_memory_settings() {
  ops::set_release_weight_pages(true);
  ops::default_weight_cache().set_budget(1);  // keeps nothing
  ops::fast::set_bf16_weight_budget(1);         // nor bf16 copies (--precision fast)
  ops::set_default_conv_algorithm(ops::ConvAlgorithm::Direct);
  set_allocation_cache_limit(0);
}

void use_default_memory_settings() { ops::set_release_weight_pages(true); }

void memory_phase_boundary() {
  ops::fast::new_weight_phase();
  ops::default_weight_cache().release_streamable();
  ops::release_work_memory();
  release_cached_memory();
#if defined(__GLIBC__)
  // Blocks under malloc's mmap threshold that a phase freed stay in its heaps and count in the resident set (≈ 0.4 GB
  // after the UNet at 512x512); this hands their whole free pages back. A few milliseconds.
  malloc_trim(0);
#endif
}

size_t bf16_budget_for(int64_t images, int64_t pixels) {
  constexpr double kTarget = 2.45e9, kProcess = 0.45e9, kPer512 = 0.65e9;
  const double working = kProcess + kPer512 * double(std::max<int64_t>(images, 1)) * double(pixels) / (512.0 * 512.0);
  return working >= kTarget ? 1 : size_t(kTarget - working);
}

void fit_bf16_budget_to(int64_t images, int64_t pixels) {
  ops::fast::fit_bf16_weight_budget(bf16_budget_for(images, pixels));
}

VaeTiling decode_tiling(bool low_memory) {
  VaeTiling t;
  if (low_memory) {
    t.enabled = true;
    t.tile_sample_size = 256;
  }
  return t;
}

}  // namespace pigment
