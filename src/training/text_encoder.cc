// The text-encoder method (--method text-encoder): the text encoder alone learns to tell captions apart by the
// pictures they describe, with CLIP's contrastive objective against a linear image tower over the VAE's latents:
//   t_i = mean over the T positions of the conditioning the UNet reads (last_hidden_state after the final norm),
//   v_i = W · flatten(latent mean_i · scaling_factor),   W trainable [H, C·h·w], not saved,
//   S_ij = s · (t_i / |t_i|) · (v_j / |v_j|),   loss = ½ (CE(S, diag) + CE(Sᵀ, diag)), s = --contrastive-scale.
// Pooling over every position (not the end-of-text one) teaches the padding positions to carry the caption too, so
// a UNet that attends to the whole context reads the caption from the first step of its own training. pigment's own
// model trains its text encoder this way before its UNet (a text encoder trained from scratch jointly with the
// UNet collapses to one context for every caption: docs/status.md). The UNet and the VAE stay as they are; the
// result is the whole model with the trained text encoder.
#include "training/text_encoder.h"

#include <cmath>
#include <unordered_map>

#include "core/error.h"
#include "core/hash.h"
#include "models/clip_text.h"
#include "models/vae.h"
#include "ops/autograd.h"
#include "ops/ops.h"
#include "pipelines/stable_diffusion.h"
#include "training/dataset.h"
#include "training/model_copy.h"
#include "training/trainer.h"

namespace pigment::training {

double contrastive_loss(const Tensor& context, const Tensor& images, double scale, double grad_scale,
                        Tensor* dcontext, Tensor* dimages) {
  PIG_CHECK(context.ndim() == 3 && images.ndim() == 2 && images.dim(0) == context.dim(0) &&
                images.dim(1) == context.dim(2),
            "contrastive_loss: context ", shape_str(context.shape()), " and images ", shape_str(images.shape()));
  const int64_t B = context.dim(0), T = context.dim(1), H = context.dim(2);
  // The head in double: pooled text, normalised text and image vectors, logits, symmetric cross-entropy.
  const size_t nb = size_t(B);
  std::vector<double> t(nb * size_t(H), 0.0), u(t.size()), w(t.size()), tn(nb), vn(nb);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < T; ++p)
      for (int64_t h = 0; h < H; ++h) t[size_t(b * H + h)] += context.f32()[(b * T + p) * H + h] / double(T);
  auto normalise = [&](const float* in_f, const std::vector<double>* in_d, std::vector<double>& out,
                       std::vector<double>& norms) {
    for (int64_t b = 0; b < B; ++b) {
      double n2 = 0;
      for (int64_t h = 0; h < H; ++h) {
        const double e = in_d ? (*in_d)[size_t(b * H + h)] : in_f[b * H + h];
        n2 += e * e;
      }
      norms[size_t(b)] = std::max(std::sqrt(n2), 1e-12);
      for (int64_t h = 0; h < H; ++h)
        out[size_t(b * H + h)] = (in_d ? (*in_d)[size_t(b * H + h)] : in_f[b * H + h]) / norms[size_t(b)];
    }
  };
  normalise(nullptr, &t, u, tn);
  normalise(images.f32(), nullptr, w, vn);
  std::vector<double> S(nb * nb), G(nb * nb, 0.0);
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < B; ++j) {
      double d = 0;
      for (int64_t h = 0; h < H; ++h) d += u[size_t(i * H + h)] * w[size_t(j * H + h)];
      S[size_t(i * B + j)] = scale * d;
    }
  // G = dloss/dS: ½ (softmax over rows − I) / B + ½ (softmax over columns − I) / B.
  double loss = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (int64_t i = 0; i < B; ++i) {
      auto at = [&](int64_t k) -> size_t { return pass == 0 ? size_t(i * B + k) : size_t(k * B + i); };
      double m = -1e300;
      for (int64_t k = 0; k < B; ++k) m = std::max(m, S[at(k)]);
      double z = 0;
      for (int64_t k = 0; k < B; ++k) z += std::exp(S[at(k)] - m);
      loss += 0.5 / double(B) * (m + std::log(z) - S[at(i)]);
      for (int64_t k = 0; k < B; ++k)
        G[at(k)] += 0.5 / double(B) * (std::exp(S[at(k)] - m) / z - (k == i ? 1.0 : 0.0));
    }
  }
  // Through the dot products and the normalisations to the pooled text and the image vectors.
  *dcontext = Tensor::zeros(context.shape());
  *dimages = Tensor::zeros(images.shape());
  for (int64_t i = 0; i < B; ++i) {
    std::vector<double> gu(size_t(H), 0.0), gw(size_t(H), 0.0);
    for (int64_t k = 0; k < B; ++k)
      for (int64_t h = 0; h < H; ++h) {
        gu[size_t(h)] += scale * G[size_t(i * B + k)] * w[size_t(k * H + h)];
        gw[size_t(h)] += scale * G[size_t(k * B + i)] * u[size_t(k * H + h)];
      }
    double du = 0, dw = 0;
    for (int64_t h = 0; h < H; ++h) {
      du += gu[size_t(h)] * u[size_t(i * H + h)];
      dw += gw[size_t(h)] * w[size_t(i * H + h)];
    }
    for (int64_t h = 0; h < H; ++h) {
      const double dt = (gu[size_t(h)] - u[size_t(i * H + h)] * du) / tn[size_t(i)];
      dimages->f32()[i * H + h] = float(grad_scale * (gw[size_t(h)] - w[size_t(i * H + h)] * dw) / vn[size_t(i)]);
      for (int64_t p = 0; p < T; ++p) dcontext->f32()[(i * T + p) * H + h] = float(grad_scale * dt / double(T));
    }
  }
  return loss;
}

namespace {

class TextEncoderMethod : public WholeModelMethod {
 public:
  TextEncoderMethod(const StableDiffusion& model, const TrainOptions& o)
      : WholeModelMethod(model, o), tokenizer_(model.tokenizer()), vae_(&model.vae()), scale_(o.contrastive_scale) {
    PIG_CHECK(family_ == Family::SD1, "--method text-encoder: only the SD1 layout (one CLIP text encoder, such as "
                                      "pigment-emoji) is implemented");
    PIG_CHECK(scale_ > 0 && scale_ <= 1000, "--contrastive-scale must be in (0, 1000], got ", scale_);
    PIG_CHECK(!o.data.buckets, "--method text-encoder: every image must have one size (the image tower is one "
                               "linear map): pass --no-buckets");
    const ModelComponent& te = train_component("text_encoder");
    te_ = ClipTextModel::load(te.model_config(), te.weights());
    const int64_t side = o.data.resolution / vae_->config().downscale();
    const int64_t F = vae_->config().latent_channels * side * side, H = te_.config().hidden_size;
    PIG_CHECK(side >= 1 && F <= (int64_t(1) << 24), "--method text-encoder: --resolution ", o.data.resolution,
              " gives an image tower of ", F, " inputs (at most 2^24)");
    // Xavier-uniform start from a fixed stream (a resumed run then restores the trained values).
    w_ = Tensor::zeros({H, F});
    uint64_t s = 0x7E5Dull;
    const float bound = std::sqrt(6.f / float(H + F));
    for (int64_t i = 0; i < w_.numel(); ++i) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      w_.f32()[i] = bound * (2.f * float((s >> 40) & 0xFFFFFF) / float(1 << 24) - 1.f);
    }
    params_.push_back({"contrastive.image_proj", w_, Tensor()});
  }

  std::optional<float> own_objective(const Batch& batch, Generator&, ops::autograd::Tape& tape,
                                     float loss_scale) override {
    const int64_t B = batch.images.dim(0);
    PIG_CHECK(B >= 2, "--method text-encoder: a batch needs at least 2 images to contrast (--train-batch-size)");
    Tensor x = latents(batch);  // [B, C·h·w], frozen
    PIG_CHECK(x.dim(1) == w_.dim(1), "--method text-encoder: an image of ", batch.images.dim(3), "x",
              batch.images.dim(2), " gives ", x.dim(1), " latent values, the image tower takes ", w_.dim(1));
    std::vector<std::vector<int64_t>> ids;
    for (const auto& caption : batch.captions) {
      std::vector<int> t = tokenizer_.encode_padded(caption);
      ids.emplace_back(t.begin(), t.end());
    }
    Tensor context, v;
    {
      ops::autograd::Recording rec(tape);
      context = te_.forward(ids, ClipOptions{}).context;  // [B, T, H]
      v = ops::linear(x, w_);                             // [B, H]
    }
    Tensor dcontext, dv;
    const double loss = contrastive_loss(context, v, scale_, loss_scale, &dcontext, &dv);
    tape.backward({context, v}, {dcontext, dv});
    return float(loss);
  }

 private:
  // The frozen VAE's latent means (· scaling_factor) of the batch, flattened; each image encoded once per run.
  Tensor latents(const Batch& batch) {
    std::vector<Tensor> rows;
    for (int64_t b = 0; b < batch.images.dim(0); ++b) {
      Tensor image = batch.images.slice0(b, b + 1);
      // Keyed as the trainer's latent cache: the path and a hash of every pixel (a flipped copy is another entry).
      const std::string key = batch.paths[size_t(b)] + "|" + std::to_string(hash_bytes(image.as_f32()));
      auto it = cache_.find(key);
      if (it == cache_.end()) {
        Tensor m = ops::scale(vae_->encode(image).mean(), vae_->scaling_factor());
        it = cache_.emplace(key, m.reshape({1, m.numel()}).clone()).first;
      }
      rows.push_back(it->second);
    }
    return rows.size() == 1 ? rows[0] : ops::concat(rows, 0);
  }

  ClipTokenizer tokenizer_;
  const Vae* vae_;
  double scale_;
  ClipTextModel te_;
  Tensor w_;
  std::unordered_map<std::string, Tensor> cache_;
};

}  // namespace

std::unique_ptr<Method> make_text_encoder_method(const StableDiffusion& model, const TrainOptions& o) {
  return std::make_unique<TextEncoderMethod>(model, o);
}

}  // namespace pigment::training
