#include <gtest/gtest.h>

#include "ops/backward.h"
#include "ops/grad_check_test_util.h"
#include "ops/ops_test_util.h"

namespace pigment::ops {
namespace {
using testing::close;
using testing::deterministic;
using testing::DVec;
using testing::from_double;
using testing::matches_finite_differences;
using testing::randn;
using testing::same_bits;
using testing::to_double;

// table [V, D] (flat) → rows ids, in double.
testing::DForward embedding_d(std::vector<int64_t> ids, int64_t D) {
  return [=](const DVec& table) {
    DVec y;
    for (int64_t id : ids)
      for (int64_t j = 0; j < D; ++j) y.push_back(table[size_t(id * D + j)]);
    return y;
  };
}

TEST(EmbeddingBackward, ReferenceMatchesFiniteDifferences) {
  const int64_t V = 7, D = 5;
  const std::vector<int64_t> ids{3, 1, 3, 0, 3, 6, 1};  // repeats; rows 2, 4, 5 absent
  const Tensor table = randn({V, D}, 1), r = randn({int64_t(ids.size()), D}, 2);
  const auto f = embedding_d(ids, D);
  EXPECT_TRUE(close(ref::embedding(table, ids), from_double(r.shape(), f(to_double(table))), 0, 0));
  const Tensor dt = ref::embedding_backward(r, ids, V);
  EXPECT_EQ(dt.shape(), (Shape{V, D}));
  EXPECT_TRUE(matches_finite_differences(dt, f, table, r));
  // A gradient shaped [B, T, D] (the positions flattened) gives the same result.
  EXPECT_TRUE(same_bits(ref::embedding_backward(r.reshape({1, int64_t(ids.size()), D}), ids, V), dt));
}

TEST(EmbeddingBackward, FastMatchesReferenceBitForBit) {
  std::mt19937 g(3);
  struct Case {
    int64_t vocab, positions, D;
  };
  for (Case c : {Case{7, 7, 5}, Case{1, 3, 1}, Case{50, 0, 4}, Case{1000, 154, 768}, Case{49408, 231, 64}}) {
    std::vector<int64_t> ids(size_t(c.positions));
    // Few distinct ids (a prompt's tokens repeat: start, end and padding tokens), some rows many times.
    std::uniform_int_distribution<int64_t> pick(0, std::min<int64_t>(c.vocab - 1, 40));
    for (auto& id : ids) id = pick(g) == 0 ? c.vocab - 1 : pick(g);
    const Tensor dy = randn({c.positions, c.D}, uint32_t(c.vocab));
    EXPECT_TRUE(same_bits(embedding_backward(dy, ids, c.vocab), ref::embedding_backward(dy, ids, c.vocab)))
        << c.vocab << " " << c.positions << " " << c.D;
  }
}

TEST(EmbeddingBackward, SameBitsAtOneAndTwoThreads) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 2 * 77; ++i) ids.push_back(i < 20 ? (i * 7919) % 49408 : 49407);
  const Tensor dy = randn({2, 77, 128}, 4);
  EXPECT_TRUE(deterministic([&] { return embedding_backward(dy, ids, 49408); }));
}

TEST(EmbeddingBackward, RejectsBadArguments) {
  const Tensor dy = randn({3, 4}, 5);
  EXPECT_THROW(embedding_backward(dy, {0, 1, 5}, 5), Error);   // id outside the table
  EXPECT_THROW(embedding_backward(dy, {0, -1, 2}, 5), Error);
  EXPECT_THROW(embedding_backward(dy, {0, 1}, 5), Error);      // positions differ
  EXPECT_THROW(ref::embedding_backward(dy, {0, 1, 7}, 5), Error);
}

}  // namespace
}  // namespace pigment::ops
