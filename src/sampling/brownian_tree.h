// The Brownian motion that DPM++ SDE draws its noise from: torchsde 0.2.6's BrownianInterval as diffusers'
// BrownianTreeNoiseSampler and k-diffusion build it (tol 1e-6, pool_size 24, halfway_tree, no Lévy area), so that a
// seed gives the increments torchsde gives, to float32 rounding.
//
// The motion W on [t0, t1] is a binary tree of intervals. The root holds W(t1) - W(t0) ~ N(0, t1 - t0); every node
// splits at its midpoint rounded to 6 decimals, and its two halves come from a Brownian bridge whose Gaussian is
// drawn with a fresh PyTorch CPU generator seeded by numpy's SeedSequence(entropy, spawn_key = (key, depth)).
// A query W(tb) - W(ta) is the sum of the nodes that tile [ta, tb] (both rounded to 6 decimals). The values depend
// only on the entropy, t0, t1, the shape and the query, never on the order of the queries, so the cache here is an
// implementation detail (torchsde's LRU cache only saves recomputation in the same way).
#pragma once
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace pigment {

// numpy.random.SeedSequence(entropy, spawn_key=spawn_key, pool_size=24).generate_state(n_words) (uint32 words).
std::vector<uint32_t> seed_sequence_state(uint64_t entropy, const std::vector<uint64_t>& spawn_key, int n_words);

// Python's round(x, 6): the exact binary value of x correctly rounded to 6 decimals (ties to even), as a double.
double round_6_decimals(double x);

class BrownianTree {
 public:
  // t0 < t1 (torchsde receives them as the doubles of float32 sigmas); W has `shape`.
  BrownianTree(double t0, double t1, Shape shape, uint64_t entropy);

  // W(to) - W(from) for times in [t0, t1] (clamped to the rounded interval); either order (from > to gives the exact
  // negation of the forward increment, as k-diffusion's BatchedBrownianTree does). Equal rounded times give zeros.
  Tensor increment(double from, double to);

  // W over the whole interval: the root node.
  const Tensor& root() const { return root_; }
  // W over the node with this spawn key at this depth (the root is key 0, depth 0; node (k, d) has children
  // (2k, d + 1) and (2k + 1, d + 1)), and that node's interval.
  Tensor node(uint64_t key, int depth);
  std::pair<double, double> node_interval(uint64_t key, int depth) const;

  // The rounded interval [R(t0), R(t1)].
  double start() const { return a_; }
  double end() const { return b_; }
  // The query's tiling (the pieces of increment(ta, tb), left to right) as (key, depth) pairs, for tests.
  std::vector<std::pair<uint64_t, int>> pieces(double ta, double tb) const;

 private:
  struct Span {
    double s, e;
    uint64_t key;
    int depth;
  };
  Span child(const Span& n, bool right) const;
  void decompose(const Span& n, double ta, double tb, std::vector<Span>& out) const;
  Tensor forward(double ta, double tb);
  // The Gaussian draw of one node's seed: torch.randn(shape, generator=Generator('cpu').manual_seed(seed)).
  Tensor normal(uint32_t seed) const;

  Shape shape_;
  uint64_t entropy_;
  double a_, b_;
  Tensor root_;
  std::map<std::pair<int, uint64_t>, Tensor> cache_;  // (depth, key) -> W of the node
  size_t cache_bytes_ = 0;
};

}  // namespace pigment
