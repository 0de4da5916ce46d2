// Drawing a VAE posterior sample with pigment's generators: the link between models/ (LatentDistribution takes a
// noise tensor) and sampling/ (the generators), which lives here because models/ does not depend on sampling/.
#pragma once
#include <vector>

#include "models/vae.h"
#include "sampling/rng.h"

namespace pigment {

// diffusers' latent_dist.sample(generator): noise = g.randn(mean's shape), one draw for the whole batch.
Tensor sample_latents(const LatentDistribution& posterior, Generator& g);
// With a list of generators (diffusers with generator=[...]): generator i draws randn([1, C, h, w]) for item i.
Tensor sample_latents(const LatentDistribution& posterior, const std::vector<Generator*>& per_item);

}  // namespace pigment
