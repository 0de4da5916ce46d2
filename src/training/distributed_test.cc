// The parts of training/distributed.h that hold without mpirun (one process: rank 0 of 1); the MPI runs themselves
// are tests/cli/train_distributed.sh.
#include "training/distributed.h"

#include <gtest/gtest.h>

#include "ops/ops.h"

namespace pigment::training {
namespace {

Batch batch_of(int64_t n, std::vector<int> positions = {}, int64_t global = 0) {
  Batch b;
  if (n > 0) b.images = Tensor::zeros({n, 3, 8, 8});
  b.positions = std::move(positions);
  b.global_size = global;
  return b;
}

TEST(Distributed, WithoutMpiRunIsOneProcess) {
  EXPECT_FALSE(distributed::active());
  EXPECT_EQ(distributed::rank(), 0);
  EXPECT_EQ(distributed::size(), 1);
  EXPECT_TRUE(distributed::is_root());
  LoaderOptions lo;
  lo.batch_size = 3;
  distributed::shard(lo);
  EXPECT_EQ(lo.batch_size, 3);
  EXPECT_EQ(lo.shard_count, 1);
  EXPECT_EQ(distributed::rank_seed(42), 42u);  // rank 0 draws as one process always has
  EXPECT_EQ(distributed::mean(2.5), 2.5);
  EXPECT_TRUE(distributed::any(true));
  EXPECT_FALSE(distributed::any(false));
  std::vector<Param> params(1);
  params[0].value = Tensor::zeros({2});
  distributed::average_gradients(params);
  EXPECT_FALSE(params[0].grad.defined());
  int calls = 0;
  distributed::root_first([&] { ++calls; });
  EXPECT_EQ(calls, 1);
  distributed::barrier();
}

// A sample's draws depend on its position in the global batch only: the same numbers whether it comes in a batch
// of two or alone in a rank's slice; different positions and seeds draw differently.
TEST(Distributed, SampleGeneratorsFollowTheGlobalPosition) {
  auto draws = [](uint64_t seed, const Batch& b) {
    std::vector<std::vector<float>> out;
    for (auto& g : distributed::sample_generators(seed, b)) out.push_back(g->randn({5}).to_vector());
    return out;
  };
  const auto both = draws(7, batch_of(2, {0, 1}, 2));
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(draws(7, batch_of(1, {0}, 2))[0], both[0]);
  EXPECT_EQ(draws(7, batch_of(1, {1}, 2))[0], both[1]);
  EXPECT_EQ(draws(7, batch_of(2)), both);  // no positions: 0..B-1
  EXPECT_NE(both[0], both[1]);
  EXPECT_NE(draws(8, batch_of(1, {0}, 2))[0], both[0]);
  EXPECT_TRUE(draws(7, batch_of(0)).empty());
  EXPECT_EQ(both[0], make_generator("cpu", 7)->randn({5}).to_vector());  // position 0: the step's own generator
  EXPECT_THROW(distributed::sample_generators(7, batch_of(2, {0}, 2)), Error);
}

TEST(Distributed, ShareWeightIsOneProcessesShareOfTheGlobalBatch) {
  EXPECT_EQ(distributed::share_weight(batch_of(2, {0, 1}, 2)), 1.f);
  EXPECT_EQ(distributed::share_weight(batch_of(0, {}, 2)), 0.f);  // nothing on this rank
  EXPECT_EQ(distributed::share_weight(batch_of(1)), 1.f);
}

}  // namespace
}  // namespace pigment::training
