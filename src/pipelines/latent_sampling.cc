#include "pipelines/latent_sampling.h"

#include "core/error.h"
#include "ops/ops.h"

namespace pigment {

Tensor sample_latents(const LatentDistribution& posterior, Generator& g) {
  return posterior.sample(g.randn(posterior.mean().shape()));
}

Tensor sample_latents(const LatentDistribution& posterior, const std::vector<Generator*>& per_item) {
  const Tensor& mean = posterior.mean();
  PIG_CHECK(int64_t(per_item.size()) == mean.dim(0), "VAE posterior: ", per_item.size(), " generators for a batch of ",
            mean.dim(0));
  std::vector<Tensor> noise;
  for (Generator* g : per_item) {
    PIG_CHECK(g, "VAE posterior: null generator");
    noise.push_back(g->randn({1, mean.dim(1), mean.dim(2), mean.dim(3)}));
  }
  return posterior.sample(ops::concat(noise, 0));
}

}  // namespace pigment
