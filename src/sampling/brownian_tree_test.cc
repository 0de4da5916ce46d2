#include "sampling/brownian_tree.h"

#include <gtest/gtest.h>

#include <cmath>

#include "sampling/rng.h"

namespace pigment {
namespace {

// numpy 1.24's SeedSequence(entropy, spawn_key=..., pool_size=24).generate_state(n) for a few inputs (the words are
// what numpy prints; the DPM++ SDE golden cases hold more).
TEST(SeedSequence, MatchesNumpy) {
  EXPECT_EQ(seed_sequence_state(1301, {}, 3), (std::vector<uint32_t>{114700471u, 929579430u, 1640445180u}));
  EXPECT_EQ(seed_sequence_state(1301, {0, 0}, 4),
            (std::vector<uint32_t>{3855879966u, 2627881307u, 1664481308u, 2147444920u}));
  EXPECT_EQ(seed_sequence_state(1301, {6, 3}, 4),
            (std::vector<uint32_t>{326388672u, 1178196770u, 1582640199u, 3027660735u}));
  // A spawn-key word past 2^32 takes two words; so does entropy past 2^32.
  EXPECT_EQ(seed_sequence_state(1301, {8589934597ull, 34}, 4),
            (std::vector<uint32_t>{4070224536u, 4281924693u, 3345864122u, 3768622073u}));
  EXPECT_EQ(seed_sequence_state(4294967303ull, {3, 2}, 4),
            (std::vector<uint32_t>{2138258832u, 2721314681u, 3149129324u, 415862099u}));
  EXPECT_EQ(seed_sequence_state(0, {0, 0}, 4), (std::vector<uint32_t>{245430115u, 3436620678u, 4120055464u, 1627243804u}));
  EXPECT_EQ(seed_sequence_state(18446744073709551615ull, {}, 3),
            (std::vector<uint32_t>{1186816001u, 310380770u, 3217591682u}));
}

TEST(BrownianTree, RoundsLikePython) {
  EXPECT_EQ(round_6_decimals(5.9064507484436035), 5.906451);
  EXPECT_EQ(round_6_decimals(0.04131447896361351), 0.041314);
  EXPECT_EQ(round_6_decimals(0.0000005), 0.0);  // the double just below 5e-7 rounds down
  EXPECT_EQ(round_6_decimals(0.0078125), 0.007812);  // an exact tie goes to even
  EXPECT_EQ(round_6_decimals(0.0234375), 0.023438);
}

Tensor sum(const Tensor& a, const Tensor& b) {
  Tensor out = a.clone();
  for (int64_t i = 0; i < out.numel(); ++i) out.f32()[i] += b.f32()[i];
  return out;
}

double max_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(double(a.f32()[i]) - double(b.f32()[i])));
  return m;
}

TEST(BrownianTree, RootAndBridgeAreConsistent) {
  const double t0 = 0.029167532920837402, t1 = 14.614645004272461;  // float32 σ_min, σ_max of SD's schedule
  BrownianTree tree(t0, t1, {1, 4, 4, 8}, 1301);
  EXPECT_EQ(tree.start(), 0.029168);
  EXPECT_EQ(tree.end(), 14.614645);
  // The root is N(seed word 0 of SeedSequence(1301)) · sqrt(t1 − t0).
  Tensor want = make_generator("cpu", 114700471u)->randn({1, 4, 4, 8});
  const float scale = float(std::sqrt(t1 - t0));
  for (int64_t i = 0; i < want.numel(); ++i) want.f32()[i] *= scale;
  EXPECT_EQ(max_diff(tree.root(), want), 0.0);
  EXPECT_EQ(max_diff(tree.increment(t0, t1), tree.root()), 0.0);
  // The two halves add up to their parent (right = parent − left, so up to one float32 rounding).
  EXPECT_LT(max_diff(sum(tree.node(0, 1), tree.node(1, 1)), tree.root()), 1e-5);
  EXPECT_LT(max_diff(sum(tree.node(6, 3), tree.node(7, 3)), tree.node(3, 2)), 1e-5);
  const auto iv = tree.node_interval(0, 1);
  EXPECT_EQ(iv.first, 0.029168);
  EXPECT_EQ(iv.second, 7.321906);  // round(0.5 · (0.029168 + 14.614645), 6)
}

TEST(BrownianTree, QueriesTileAndDoNotDependOnOrder) {
  const Shape shape{1, 4, 3, 5};  // 60 elements: the vectorised randn path with a tail
  BrownianTree a(0.03, 14.6, shape, 7), b(0.03, 14.6, shape, 7);
  const Tensor w1 = a.increment(2.5, 9.25);
  const Tensor w2 = a.increment(0.5, 2.5);
  // b answers the same queries in the other order, and evaluates deep nodes first.
  (void)b.node(12345, 20);
  EXPECT_EQ(max_diff(b.increment(0.5, 2.5), w2), 0.0);
  EXPECT_EQ(max_diff(b.increment(2.5, 9.25), w1), 0.0);
  // W(0.5 → 9.25) = W(0.5 → 2.5) + W(2.5 → 9.25) up to float32 rounding of the tilings.
  EXPECT_LT(max_diff(a.increment(0.5, 9.25), sum(w2, w1)), 1e-4);
  // Backwards is the exact negation.
  const Tensor back = a.increment(9.25, 2.5);
  for (int64_t i = 0; i < back.numel(); ++i) EXPECT_EQ(back.f32()[i], -w1.f32()[i]);
  // Every piece lies inside the query and they follow each other.
  const auto pieces = a.pieces(2.5, 9.25);
  ASSERT_FALSE(pieces.empty());
  double at = 2.5;
  for (const auto& [key, depth] : pieces) {
    const auto iv = a.node_interval(key, depth);
    EXPECT_EQ(iv.first, at);
    at = iv.second;
  }
  EXPECT_EQ(at, 9.25);
  // Times outside the interval are clamped to it; an empty query is zero.
  EXPECT_EQ(max_diff(a.increment(0.0, 100.0), a.root()), 0.0);
  EXPECT_EQ(max_diff(a.increment(3.0, 3.0000001), Tensor::zeros(shape)), 0.0);
  // Another seed, another motion.
  BrownianTree c(0.03, 14.6, shape, 8);
  EXPECT_GT(max_diff(c.increment(2.5, 9.25), w1), 0.1);
}

// The increments over disjoint intervals are independent Gaussians with variance equal to the length.
TEST(BrownianTree, IncrementsHaveTheRightVariance) {
  BrownianTree tree(0.1, 10.1, {1, 4, 32, 32}, 42);
  double var_a = 0, var_b = 0, cov = 0;
  const Tensor a = tree.increment(1.0, 3.0), b = tree.increment(3.0, 3.5);
  const int64_t n = a.numel();
  for (int64_t i = 0; i < n; ++i) {
    var_a += double(a.f32()[i]) * a.f32()[i];
    var_b += double(b.f32()[i]) * b.f32()[i];
    cov += double(a.f32()[i]) * b.f32()[i];
  }
  EXPECT_NEAR(var_a / n, 2.0, 0.15);
  EXPECT_NEAR(var_b / n, 0.5, 0.04);
  EXPECT_NEAR(cov / n / std::sqrt(2.0 * 0.5), 0.0, 0.06);
}

TEST(BrownianTree, BadInputThrows) {
  EXPECT_THROW(BrownianTree(1.0, 1.0, {4}, 0), Error);
  EXPECT_THROW(BrownianTree(2.0, 1.0, {4}, 0), Error);
  EXPECT_THROW(BrownianTree(1.0, 1.0000001, {4}, 0), Error);  // narrower than the 1e-6 grid
  EXPECT_THROW(BrownianTree(0.0, NAN, {4}, 0), Error);
  BrownianTree t(0.0, 1.0, {4}, 0);
  EXPECT_THROW(t.node(4, 2), Error);
  EXPECT_THROW(t.node_interval(0, -1), Error);
}

}  // namespace
}  // namespace pigment
