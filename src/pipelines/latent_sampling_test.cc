#include "pipelines/latent_sampling.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "ops/ops.h"

namespace pigment {
namespace {

Tensor moments() {  // [2, 8, 2, 3]: mean ++ logvar
  Tensor t = Tensor::empty({2, 8, 2, 3});
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = 0.1f * float((i * 5) % 9) - 0.4f;
  return t;
}

TEST(LatentSampling, OneGeneratorOrOnePerItem) {
  LatentDistribution d(moments());
  auto g = make_generator("cpu", 1201);
  Tensor whole = sample_latents(d, *g);
  Tensor expected = d.sample(make_generator("cpu", 1201)->randn({2, 4, 2, 3}));
  EXPECT_EQ(whole.to_vector(), expected.to_vector());
  auto g0 = make_generator("cpu", 1), g1 = make_generator("cpu", 2);
  Tensor each = sample_latents(d, std::vector<Generator*>{g0.get(), g1.get()});
  Tensor second = d.sample(
      ops::concat({make_generator("cpu", 1)->randn({1, 4, 2, 3}), make_generator("cpu", 2)->randn({1, 4, 2, 3})}, 0));
  EXPECT_EQ(each.to_vector(), second.to_vector());
  EXPECT_THROW(sample_latents(d, std::vector<Generator*>{g0.get()}), Error);
  EXPECT_THROW(d.sample(Tensor::full({1, 4, 2, 3}, 0.f)), Error);  // noise of another shape
}

}  // namespace
}  // namespace pigment
