// Golden cases vae/*: diffusers AutoencoderKL encode (posterior, sample with a seeded CPU generator) and decode,
// with forward-hook intermediates (some cut to the first batch element / channels: compared on that slice).
#include <map>
#include <memory>
#include <regex>

#include "golden.h"
#include "models/model_config.h"
#include "models/vae.h"
#include "pipelines/latent_sampling.h"
#include "ops/ops.h"
#include "sampling/rng.h"

namespace pigment::golden {
namespace {

Weights open_weights(const fs::path& file) {
  SafeTensors st = SafeTensors::open(file.string());
  auto map = std::make_shared<TensorMap>();
  for (const auto& e : st.entries()) (*map)[e.name] = st.get(e.name);
  return Weights(map, file.string());
}

// The seed is only written in the noise tensor's description: "... manual_seed(1201) ...".
uint64_t seed_from(const std::string& meaning) {
  std::smatch m;
  PIG_CHECK(std::regex_search(meaning, m, std::regex(R"(manual_seed\((\d+)\))")),
            "vae case: no manual_seed(N) in the description of latent_sample_noise: ", meaning);
  return std::stoull(m[1].str());
}

void run_vae(Case& c) {
  const auto& spec = c.spec();
  fs::path model_dir = c.golden_root() / spec["producer"]["model_dir"].get<std::string>();
  Vae vae = Vae::load(ModelConfig::load(model_dir.string()),
                      open_weights(model_dir / "diffusion_pytorch_model.safetensors"));

  std::map<std::string, Tensor> produced;
  auto record = [&](const std::string& prefix) {
    return [&produced, prefix](const std::string& name, const Tensor& t) { produced[prefix + name] = t; };
  };
  LatentDistribution post = vae.encode(c.tensor("image"), {}, record("enc.intermediate."));
  produced["latent_mean"] = post.mean();
  produced["latent_logvar"] = post.logvar();
  produced["latent_std"] = post.stddev();
  if (spec["tensors"].contains("latent_sample_noise")) {
    auto gen = make_generator("cpu", seed_from(spec["tensors"]["latent_sample_noise"].value("meaning", "")));
    // Draw exactly as diffusers does (randn of the mean's shape), then check the draw and the sample separately.
    Tensor noise = gen->randn(post.mean().shape());
    auto again = make_generator("cpu", seed_from(spec["tensors"]["latent_sample_noise"].value("meaning", "")));
    produced["latent_sample_noise"] = noise;
    produced["latent_sample"] = sample_latents(post, *again);
    produced["latent_sample_scaled"] = ops::scale(produced["latent_sample"], vae.scaling_factor());
  }
  produced["decoded"] = vae.decode(c.tensor("z"), {}, record("dec.intermediate."));
  produced["roundtrip"] = vae.decode(post.mean());

  for (const auto& [name, t] : spec["tensors"].items()) {
    if (t.value("role", "") != "output") continue;
    auto it = produced.find(name);
    if (it == produced.end()) {
      c.failure(name, "no output of that name");
      continue;
    }
    Tensor actual = it->second;
    // Intermediates may be stored as [0:b, 0:k] slices of the full activation.
    auto shape = t["shape"].get<std::vector<int64_t>>();
    if (actual.ndim() == 4 && shape.size() == 4 && actual.shape() != Shape(shape.begin(), shape.end()))
      actual = ops::slice(ops::slice(actual, 0, 0, std::min(shape[0], actual.dim(0))), 1, 0,
                          std::min(shape[1], actual.dim(1)));
    c.compare(name, actual);
  }
}

Register reg("vae/", run_vae);

}  // namespace
}  // namespace pigment::golden
