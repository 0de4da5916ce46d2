// The VAE method (--method vae): the autoencoder trains on the images alone, as the first stage of a latent
// diffusion model is trained: x → encoder → a diagonal Gaussian → z = mean + std·ε → decoder → x̂, with
//   loss = reconstruction(x̂, x) + kl_weight · mean over the batch of KL(q(z|x) ‖ N(0, 1)),
//   KL = 0.5 Σ_{c,h,w} (mean² + var − 1 − logvar)
// and the reconstruction L1 (--vae-loss l1, the default, as the LDM autoencoders) or MSE. The UNet and the text
// encoder stay as they are. The saved checkpoint sets the VAE's scaling_factor to 1 / std of the latents it
// produced over the run's last steps (what SD's 0.18215 is for its VAE), so the diffusion model trained next sees
// latents of unit variance.
#include <cmath>

#include "core/error.h"
#include "models/vae.h"
#include "ops/autograd.h"
#include "ops/backward.h"
#include "ops/ops.h"
#include "pipelines/latent_sampling.h"
#include "pipelines/stable_diffusion.h"
#include "training/dataset.h"
#include "training/model_copy.h"
#include "training/trainer.h"

namespace pigment::training {

namespace {

class VaeMethod : public WholeModelMethod {
 public:
  VaeMethod(const StableDiffusion& model, const TrainOptions& o)
      : WholeModelMethod(model, o), l1_(o.vae_loss == "l1"), kl_weight_(o.kl_weight) {
    PIG_CHECK(o.vae_loss == "l1" || o.vae_loss == "mse", "--vae-loss: l1 or mse, got '", o.vae_loss, "'");
    PIG_CHECK(kl_weight_ >= 0 && std::isfinite(kl_weight_), "--kl-weight must be >= 0, got ", kl_weight_);
    const ModelComponent& vae = train_component("vae");
    vae_ = Vae::load(vae.model_config(), vae.weights());
  }

  std::optional<float> own_objective(const Batch& batch, Generator& gen, ops::autograd::Tape& tape,
                                     float scale) override {
    const Tensor& x = batch.images;
    Tensor recon, kl_terms, z;
    {
      ops::autograd::Recording rec(tape);
      LatentDistribution dist = vae_.encode(x);
      z = sample_latents(dist, gen);
      recon = vae_.decode(z);
      Tensor var = ops::exp(dist.logvar());
      kl_terms = ops::sub(ops::add(ops::mul(dist.mean(), dist.mean()), var), dist.logvar());
      kl_terms = ops::add(kl_terms, Tensor::full({1}, -1.f));
    }
    PIG_CHECK(recon.shape() == x.shape(), "--method vae: the decoder gives ", shape_str(recon.shape()), " for images ",
              shape_str(x.shape()), " (the resolution must be a multiple of ", vae_.config().downscale(), ")");
    const int64_t B = x.dim(0);
    double kl_sum = 0;
    for (int64_t i = 0; i < kl_terms.numel(); ++i) kl_sum += kl_terms.f32()[i];
    const double kl = 0.5 * kl_sum / double(B);
    const double rec_loss = l1_ ? ops::l1(recon, x) : ops::mse(recon, x);
    tape.backward({recon, kl_terms},
                  {l1_ ? ops::l1_backward(recon, x, scale) : ops::mse_backward(recon, x, scale),
                   Tensor::full(kl_terms.shape(), float(kl_weight_ * 0.5 / double(B) * scale))});
    // The latents' spread, for the scaling factor: an average over the run's last steps.
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < z.numel(); ++i) {
      s += z.f32()[i];
      s2 += double(z.f32()[i]) * z.f32()[i];
    }
    const double n = double(z.numel()), var = std::max(1e-12, s2 / n - (s / n) * (s / n));
    latent_var_ = seen_ == 0 ? var : 0.99 * latent_var_ + 0.01 * var;
    ++seen_;
    return float(rec_loss + kl_weight_ * kl);
  }

  void save(const std::string& path, const std::map<std::string, std::string>& metadata) const override {
    auto* self = const_cast<VaeMethod*>(this);
    if (seen_ > 0) self->components_["vae"].config["scaling_factor"] = 1.0 / std::sqrt(latent_var_);
    WholeModelMethod::save(path, metadata);
  }

 private:
  bool l1_;
  double kl_weight_;
  Vae vae_;
  double latent_var_ = 1;
  int64_t seen_ = 0;
};

}  // namespace

std::unique_ptr<Method> make_vae_method(const StableDiffusion& model, const TrainOptions& o) {
  return std::make_unique<VaeMethod>(model, o);
}

}  // namespace pigment::training
