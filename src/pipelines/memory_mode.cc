#include "pipelines/memory_mode.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/allocator.h"
#include "ops/fast_products.h"
#include "ops/int8_products.h"
#include "ops/ops.h"

namespace pigment {

namespace {
bool g_keep_weights_over_phases = false;
bool g_low_memory = false;  // use_low_memory_settings ran and was not undone

// The default WeightCache's budget; one beyond the usual budget is roomy enough to keep its weights over phases.
void set_weight_budget(size_t budget) {
  ops::default_weight_cache().set_budget(budget);
  g_keep_weights_over_phases = budget > ops::default_weight_cache_budget();
}
}  // namespace

void use_low_memory_settings() {
  g_low_memory = true;
  ops::set_release_weight_pages(true);
  set_weight_budget(1);                       // keeps nothing
  ops::fast::set_bf16_weight_budget(1);         // nor bf16 copies (--precision fast)
  ops::int8::set_keep_weights(false);           // nor int8 ones (--precision int8)
  ops::set_default_conv_algorithm(ops::ConvAlgorithm::Direct);
  set_allocation_cache_limit(0);
}

size_t exact_weight_budget(size_t physical_memory_bytes) {
  if (std::getenv("PIGMENT_WEIGHT_CACHE_MB")) return ops::default_weight_cache_budget();
  constexpr size_t kMin = size_t(1280) << 20, kMax = size_t(6) << 30;
  return std::clamp(physical_memory_bytes / 4, kMin, kMax);
}

void use_default_memory_settings(ops::Precision precision) {
  if (g_low_memory) {  // a process that loaded a model in low-memory mode before: undo what that set
    ops::fast::reset_bf16_weight_budget();
    ops::int8::set_keep_weights(true);
    ops::set_default_conv_algorithm(ops::ConvAlgorithm::Auto);
    reset_allocation_cache_limit();
    g_low_memory = false;
  }
  ops::set_release_weight_pages(true);
  size_t budget = ops::default_weight_cache_budget();
  // Only where the exact path was chosen over a faster default: on a CPU without one, exact is the default mode,
  // which stays within the default budget.
  if (precision == ops::Precision::Fp32 && ops::default_precision() != ops::Precision::Fp32) {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    budget = exact_weight_budget(pages > 0 && page > 0 ? size_t(pages) * size_t(page) : 0);
  }
  set_weight_budget(budget);
}

void use_default_weight_budget() { set_weight_budget(ops::default_weight_cache_budget()); }

void memory_phase_boundary() {
  ops::fast::new_weight_phase();
  if (!g_keep_weights_over_phases) ops::default_weight_cache().release_streamable();
  ops::release_work_memory();
#if defined(__GLIBC__)
  // Small blocks (under the pool's 256 KiB) that a phase freed stay in malloc's heaps and count in the resident set;
  // this hands their whole free pages back. A few milliseconds. The tensor pool (core/allocator.h) keeps its pages:
  // the next phase reuses them.
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
