#include "training/diffusion_objective.h"

#include <algorithm>
#include <cmath>

#include "ops/backward.h"

namespace pigment::training {

Prediction prediction_from_name(const std::string& name) {
  if (name == "epsilon") return Prediction::Epsilon;
  if (name == "v_prediction") return Prediction::V;
  if (name == "sample") return Prediction::Sample;
  throw Error("unknown prediction type '" + name + "' (expected epsilon, v_prediction or sample)");
}

const char* prediction_name(Prediction p) {
  switch (p) {
    case Prediction::Epsilon: return "epsilon";
    case Prediction::V: return "v_prediction";
    case Prediction::Sample: return "sample";
  }
  return "?";
}

DiffusionObjective::DiffusionObjective(schedule::TrainSchedule train_schedule, ObjectiveOptions options)
    : schedule_(std::move(train_schedule)), options_(options) {}

namespace {
float sqrt_a(const schedule::TrainSchedule& s, int t) { return s.sqrt_alpha_prod(t); }
float sqrt_1ma(const schedule::TrainSchedule& s, int t) { return s.sqrt_one_minus_alpha_prod(t); }
float neg_sqrt_1ma(const schedule::TrainSchedule& s, int t) { return -s.sqrt_one_minus_alpha_prod(t); }
}  // namespace

Tensor DiffusionObjective::combine(const Tensor& x, float (*a)(const schedule::TrainSchedule&, int), const Tensor& y,
                                   float (*c)(const schedule::TrainSchedule&, int), const std::vector<int>& timesteps) const {
  PIG_CHECK(x.shape() == y.shape() && x.ndim() >= 1 && x.dim(0) == int64_t(timesteps.size()),
            "diffusion objective: latents ", shape_str(x.shape()), " and noise ", shape_str(y.shape()), " for ",
            timesteps.size(), " timesteps");
  for (int t : timesteps)
    PIG_CHECK(t >= 0 && t < schedule_.size(), "diffusion objective: timestep ", t, " outside [0, ",
              schedule_.size(), ")");
  Tensor xf = x.as_f32(), yf = y.as_f32();
  Tensor out = Tensor::empty(x.shape());
  const int64_t B = x.dim(0), n = B ? x.numel() / B : 0;
  for (int64_t b = 0; b < B; ++b) {
    const float ab = a(schedule_, timesteps[size_t(b)]), cb = c(schedule_, timesteps[size_t(b)]);
    const float *px = xf.f32() + b * n, *py = yf.f32() + b * n;
    float* o = out.f32() + b * n;
    for (int64_t i = 0; i < n; ++i) {
      const float u = ab * px[i], v = cb * py[i];  // two float products, then the sum (torch's order)
      o[i] = u + v;
    }
  }
  return out;
}

Tensor DiffusionObjective::add_noise(const Tensor& x0, const Tensor& noise, const std::vector<int>& timesteps) const {
  return combine(x0, sqrt_a, noise, sqrt_1ma, timesteps);
}

Tensor DiffusionObjective::target(const Tensor& x0, const Tensor& noise, const std::vector<int>& timesteps) const {
  switch (options_.prediction) {
    case Prediction::Epsilon: return noise.as_f32().clone();
    case Prediction::Sample: return x0.as_f32().clone();
    case Prediction::V: return combine(noise, sqrt_a, x0, neg_sqrt_1ma, timesteps);
  }
  return Tensor();
}

std::vector<float> DiffusionObjective::snr(const std::vector<int>& timesteps) const {
  std::vector<float> s;
  for (int t : timesteps) {
    const float alpha = schedule_.sqrt_alpha_prod(t), sigma = schedule_.sqrt_one_minus_alpha_prod(t);
    const float r = alpha / sigma;
    float v = r * r;
    if (options_.prediction == Prediction::V) v = v + 1.f;
    s.push_back(v);
  }
  return s;
}

std::vector<float> DiffusionObjective::loss_weights(const std::vector<int>& timesteps) const {
  std::vector<float> w(timesteps.size(), 1.f);
  if (options_.min_snr_gamma <= 0) return w;
  const std::vector<float> s = snr(timesteps);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::min(s[i], options_.min_snr_gamma) / s[i];
  return w;
}

DiffusionObjective::Loss DiffusionObjective::loss(const Tensor& pred, const Tensor& target,
                                                  const std::vector<int>& timesteps) const {
  PIG_CHECK(pred.shape() == target.shape(), "diffusion objective: prediction ", shape_str(pred.shape()),
            " and target ", shape_str(target.shape()), " differ");
  Loss l;
  const std::vector<float> w = loss_weights(timesteps);
  l.value = ops::weighted_mse(pred, target, w);
  Tensor p = pred.as_f32(), t = target.as_f32();
  const int64_t B = pred.dim(0), n = B ? pred.numel() / B : 0;
  for (int64_t b = 0; b < B; ++b) {
    double s = 0;
    for (int64_t i = b * n; i < (b + 1) * n; ++i) s += double(p.f32()[i] - t.f32()[i]) * (p.f32()[i] - t.f32()[i]);
    l.per_sample_mse.push_back(float(s / double(n)));
  }
  l.dpred = ops::weighted_mse_backward(pred, target, w);
  return l;
}

}  // namespace pigment::training
