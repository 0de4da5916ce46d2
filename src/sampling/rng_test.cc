#include "sampling/rng.h"

#include <gtest/gtest.h>

#include "sampling/rng_cuda.h"

namespace pigment {
namespace {

std::vector<float> values(const Tensor& t) { return t.to_vector(); }

TEST(CpuGenerator, MatchesTorchManualSeedZero) {
  // torch.manual_seed(0); torch.randn(4) / torch.rand(4)
  auto n = values(make_generator("cpu", 0)->randn({4}));
  const float want_n[] = {1.540996f, -0.293429f, -2.178789f, 0.568431f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(n[i], want_n[i], 1e-5f);
  auto u = values(make_generator("cpu", 0)->rand({4}));
  const float want_u[] = {0.496257f, 0.768222f, 0.088477f, 0.132030f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(u[i], want_u[i], 1e-6f);
}

TEST(CpuGenerator, SeedUsesLow32Bits) {
  EXPECT_EQ(values(make_generator("cpu", 7)->rand({5})), values(make_generator("cpu", (1ull << 32) + 7)->rand({5})));
}

TEST(CpuGenerator, SmallAndLargePathsDiffer) {
  // Below 16 elements the scalar double path runs, from 16 on the block path: randn(15) and randn(17) differ at once.
  auto a = values(make_generator("cpu", 3)->randn({15}));
  auto b = values(make_generator("cpu", 3)->randn({17}));
  EXPECT_NE(a[0], b[0]);
  // [3, 7] is 21 elements: the first block of 16 is the same as randn(16) for its first 5 values only.
  auto c = values(make_generator("cpu", 3)->randn({3, 7}));
  auto d = values(make_generator("cpu", 3)->randn({16}));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(c[i], d[i]);
}

TEST(CpuGenerator, ScalarPathCachesTheSecondNormal) {
  // Two draws of 1 element equal one draw of 2 (the sine half is kept between calls).
  auto g = make_generator("cpu", 11);
  const float first = values(g->randn({1}))[0], second = values(g->randn({1}))[0];
  auto both = values(make_generator("cpu", 11)->randn({2}));
  EXPECT_EQ(first, both[0]);
  EXPECT_EQ(second, both[1]);
}

TEST(Philox, KnownAnswers) {
  // Random123's known-answer vectors for philox4x32-10.
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, 0), (std::array<uint32_t, 4>{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, ~0ull),
            (std::array<uint32_t, 4>{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, 0x299f31d0a4093822ull),
            (std::array<uint32_t, 4>{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(CudaGenerator, OffsetAdvancesBetweenDraws) {
  auto g = make_generator("cuda", 42);
  auto a = values(g->randn({64}));
  auto b = values(g->randn({64}));
  EXPECT_NE(a, b);
  EXPECT_EQ(a, values(make_generator("cuda", 42)->randn({64})));
  // rand lies in [0, 1).
  for (float v : values(make_generator("cuda", 1)->rand({1000}))) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LT(v, 1.0f);
  }
}

TEST(CudaGenerator, LargeTensorsDependOnTheDeviceShape) {
  // Past 256 · (SMs · 8) elements the grid is capped and threads loop: the values then depend on the SM count.
  const Shape big = {300000};
  auto a = values(make_cuda_generator(5, {132, 2048})->randn(big));
  auto b = values(make_cuda_generator(5, {108, 2048})->randn(big));
  EXPECT_EQ(a[0], b[0]);
  EXPECT_NE(a[big[0] - 1], b[big[0] - 1]);
}

TEST(Generator, UnknownKindThrows) { EXPECT_THROW(make_generator("tpu", 1), Error); }

}  // namespace
}  // namespace pigment
