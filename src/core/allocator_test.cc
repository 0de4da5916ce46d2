#include "core/allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "core/tensor.h"

namespace pigment {
namespace {

TEST(Allocator, SmallBlocksAreAligned) {
  for (size_t n : {0, 1, 63, 64, 1000, 1 << 20}) {
    auto p = allocate(n);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p.get()) % 64, 0u) << n;
  }
}

TEST(Allocator, LargeBlocksAreReusedFromABoundedCache) {
  release_cached_memory();
  const size_t n = (size_t(40) << 20) + 3;
  void* first;
  {
    auto p = allocate(n);
    first = p.get();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % (2 << 20), 0u);
    std::memset(p.get(), 1, n);  // the whole block is usable
  }
  EXPECT_GE(cached_memory_bytes(), n);
  {
    auto p = allocate(n);
    EXPECT_EQ(p.get(), first);  // same size again: the cached block comes back
    EXPECT_EQ(cached_memory_bytes(), 0u);
  }
  release_cached_memory();
  EXPECT_EQ(cached_memory_bytes(), 0u);
  set_allocation_cache_limit(0);
  { auto p = allocate(n); }
  EXPECT_EQ(cached_memory_bytes(), 0u);
  set_allocation_cache_limit(size_t(1024) << 20);
}

TEST(Allocator, TensorsUseIt) {
  Tensor t = Tensor::zeros({int64_t(9) << 20});  // 36 MiB
  EXPECT_EQ(t.f32()[t.numel() - 1], 0.f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
}

}  // namespace
}  // namespace pigment
