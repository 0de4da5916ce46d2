#include "core/allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "core/tensor.h"

namespace pigment {
namespace {

constexpr size_t kMiB = size_t(1) << 20;

TEST(Allocator, BlocksAreAligned) {
  for (size_t n : {size_t(0), size_t(1), size_t(63), size_t(64), size_t(1000), kMiB, 3 * kMiB + 5}) {
    auto p = allocate(n);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p.get()) % 64, 0u) << n;
  }
}

// A freed block serves later blocks of other sizes, and free neighbours merge into one block again. Blocks larger
// than a segment (128 MiB) get a segment of their own, so no block other tests left in the pool can take these.
TEST(Allocator, FreedBlocksServeOtherSizesAndMerge) {
  release_cached_memory();
  char* first;
  {
    auto p = allocate(300 * kMiB);
    first = static_cast<char*>(p.get());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % (2 * kMiB), 0u);
    std::memset(first, 1, 300 * kMiB);  // the whole block is usable
  }
  EXPECT_GE(cached_memory_bytes(), 300 * kMiB);  // kept mapped for the next block
  {
    auto a = allocate(200 * kMiB);
    auto b = allocate(100 * kMiB);
    EXPECT_EQ(a.get(), first);
    EXPECT_EQ(b.get(), first + 200 * kMiB);
  }
  auto whole = allocate(300 * kMiB);  // the two halves merged
  EXPECT_EQ(whole.get(), first);
}

TEST(Allocator, ReleaseUnmapsSegmentsWithNothingLive) {
  release_cached_memory();
  const size_t before = pooled_memory_bytes();
  { auto p = allocate(300 * kMiB); }
  EXPECT_GE(pooled_memory_bytes(), before + 300 * kMiB);
  release_cached_memory();
  EXPECT_LE(pooled_memory_bytes(), before);
}

TEST(Allocator, WithoutFreeMemoryLargeBlocksAreUnmappedAndSmallOnesComeFromMalloc) {
  set_allocation_cache_limit(0);
  const size_t before = pooled_memory_bytes();
  {
    auto small = allocate(kMiB);
    EXPECT_EQ(pooled_memory_bytes(), before);
    auto large = allocate(40 * kMiB);
    EXPECT_EQ(pooled_memory_bytes(), before + 40 * kMiB);
  }
  EXPECT_EQ(pooled_memory_bytes(), before);
  EXPECT_EQ(cached_memory_bytes(), 0u);
  set_allocation_cache_limit(SIZE_MAX);
}

// Threads allocating and freeing blocks of many sizes never get overlapping memory.
TEST(Allocator, ConcurrentBlocksDoNotOverlap) {
  auto work = [](unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<std::pair<std::shared_ptr<void>, size_t>> live;
    for (int i = 0; i < 400; ++i) {
      if (!live.empty() && rng() % 3 == 0) {
        const size_t k = rng() % live.size();
        auto [p, n] = live[k];
        const auto* bytes = static_cast<const unsigned char*>(p.get());
        for (size_t j = 0; j < n; j += 4093) ASSERT_EQ(bytes[j], static_cast<unsigned char>(seed)) << j;
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
        continue;
      }
      const size_t n = (size_t(256) << 10) + rng() % (6 * kMiB);
      auto p = allocate(n);
      std::memset(p.get(), static_cast<int>(seed & 0xff), n);
      live.emplace_back(std::move(p), n);
    }
  };
  std::thread a(work, 17u), b(work, 91u);
  a.join();
  b.join();
}

TEST(Allocator, TensorsUseIt) {
  Tensor t = Tensor::zeros({int64_t(9) << 20});  // 36 MiB
  EXPECT_EQ(t.f32()[t.numel() - 1], 0.f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
}

}  // namespace
}  // namespace pigment
