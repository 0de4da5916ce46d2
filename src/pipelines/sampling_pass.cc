// StableDiffusion's sampling pass: the schedule, the starting latents of each mode, the text conditioning
// (pipelines/pass_conditioning.h), the denoising loop with guidance and ControlNet residuals, and the decoding.
// Every piece follows diffusers' pipelines step for step (see stable_diffusion.h), so that recorded runs reproduce.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "imaging/a1111_geometry.h"
#include "imaging/blur.h"
#include "imaging/resize.h"
#include "ops/ops.h"
#include "pipelines/latent_sampling.h"
#include "pipelines/memory_mode.h"
#include "pipelines/pass_conditioning.h"
#include "pipelines/stable_diffusion.h"
#include "sampling/noise_schedule.h"
#include "sampling/sampler_names.h"

namespace pigment {

namespace {

// Standard deviation over all elements of row b (torch.std, unbiased), as guidance rescale uses it per sample.
double row_std(const Tensor& x, int64_t b) {
  int64_t n = x.numel() / x.dim(0);
  const float* p = x.f32() + b * n;
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += p[i];
  mean /= n;
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += (p[i] - mean) * (p[i] - mean);
  return std::sqrt(s / std::max<int64_t>(1, n - 1));
}

std::string step_name(size_t i) {
  char buf[48];  // room for any size_t
  std::snprintf(buf, sizeof buf, "latents.step%02zu", i);
  return buf;
}

// A resized mask → [1, 1, H, W] of 0/1 (white = repaint): binarized at 0.5 as diffusers' mask processor.
Tensor mask_to_tensor(const Image& m) {
  Tensor t = Tensor::empty({1, 1, m.height, m.width});
  for (size_t i = 0; i < m.pixels.size(); ++i) t.f32()[i] = m.pixels[i] / 255.f >= 0.5f ? 1.f : 0.f;
  return t;
}

// torch.nn.functional.interpolate(mode="nearest") to (h, w).
Tensor resize_nearest(const Tensor& x, int64_t h, int64_t w) {
  int64_t NC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
  Tensor y = Tensor::empty({x.dim(0), x.dim(1), h, w});
  for (int64_t c = 0; c < NC; ++c)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j)
        y.f32()[(c * h + i) * w + j] = x.f32()[(c * H + std::min(H - 1, int64_t(i * H / h))) * W +
                                               std::min(W - 1, int64_t(j * W / w))];
  return y;
}

// The ControlNet units' maps in [0, 1] at the output size, the units checked.
std::vector<Tensor> control_maps(const GenerateRequest& r) {
  std::vector<Tensor> maps;
  for (const ControlUnit& cu : r.control) {
    PIG_CHECK(cu.net, "ControlNet unit without a model");
    PIG_CHECK(cu.start >= 0 && cu.end <= 1 && cu.start < cu.end, "control start/end must satisfy 0 <= start < end <= 1 "
              "(got ", cu.start, ", ", cu.end, ")");
    Image img = to_rgb(cu.image);
    if (img.width != r.width || img.height != r.height) img = resize_image(img, r.width, r.height, ImageFilter::Lanczos);
    maps.push_back(ops::scale(ops::add(image_to_tensor(img), Tensor::full({1}, 1.f)), 0.5f));
  }
  return maps;
}

// The UNet's output rows [uncond, cond_1, ..., cond_k] → the guided noise prediction: ε = ε_u + cfg · Σ_k w_k (ε_k −
// ε_u), with one part of weight 1 the usual classifier-free guidance; then guidance rescale.
Tensor guided_noise(const Tensor& out, const ConditioningBatch& batch, const GenerateRequest& r, bool composable) {
  Tensor eu = out.slice0(0, 1);
  Tensor eps;
  if (!composable) {
    Tensor ec = out.slice0(1, 2);
    eps = ops::add_scaled(eu, ops::sub(ec, eu), float(r.cfg_scale));
  } else {
    eps = eu.clone();
    for (size_t k = 0; k < batch.weights.size(); ++k)
      eps = ops::add_scaled(eps, ops::sub(out.slice0(int64_t(k) + 1, int64_t(k) + 2), eu),
                            float(r.cfg_scale * batch.weights[k]));
  }
  if (r.guidance_rescale > 0) {  // Lin et al. 2023, "Common diffusion noise schedules are flawed", eq. 15-16
    double ratio = row_std(out.slice0(1, 2), 0) / row_std(eps, 0);
    Tensor rescaled = ops::scale(eps, float(ratio));
    eps = ops::add(ops::scale(rescaled, float(r.guidance_rescale)), ops::scale(eps, float(1.0 - r.guidance_rescale)));
  }
  return eps;
}

}  // namespace

// What the denoising loop works with, for one pass.
struct StableDiffusion::PassContext {
  const GenerateRequest& r;
  const PassSchedule& plan;
  const PassLatents& init;
  Scheduler& sched;
  Generator& gen;
  PassConditioning& cond;
  StageProbe see;
  int pass = 1, passes = 1;
  bool inpaint = false, unet_inpaint = false;  // unet_inpaint: a 9-channel model takes mask and masked image
  // Adapters that act inside the UNet: hypernetworks on every attention context, ControlNet maps in [0, 1].
  std::function<AttentionContext(const std::string&, const Tensor&)> hypernet;
  std::vector<Tensor> control_maps;
};

GenerateResult StableDiffusion::run_pass(const GenerateRequest& r, const Tensor* hires_init, int pass, int passes,
                                         bool decode, const ProgressCallback& progress,
                                         const PipelineProbe& probe) const {
  check_request(r);
  StageProbe see = [&](const std::string& name, const Tensor& t) {
    if (probe) probe(pass > 1 ? "hires." + name : name, t);
  };
  std::unique_ptr<Scheduler> sched = make_sampler(r.sampler, scheduler_config(r), r.schedule);
  std::unique_ptr<Generator> gen = make_generator(r.rng, r.seed);
  const PassSchedule plan = pass_schedule(r, hires_init, *sched);
  const PassLatents init = initial_latents(r, hires_init, plan, *sched, *gen, see);
  // Text conditioning per step: AND parts and prompt editing from the prompt, each distinct text encoded once.
  PassConditioning cond(*this, r, std::max(1, int(plan.timesteps.size())));
  cond.report(see);
  PassContext pc{r, plan, init, *sched, *gen, cond, see, pass, passes, false, false, {}, {}};
  pc.inpaint = r.init_image && r.mask;
  pc.unet_inpaint = unet_->config().in_channels == 2 * latent_channels() + 1;
  if (!r.hypernetworks.empty()) pc.hypernet = hypernetwork_hook(r.hypernetworks);
  pc.control_maps = control_maps(r);

  memory_phase_boundary();  // the text encoders' prepared weights are not needed while sampling
  // The bf16 copies get what the 2.5 GB default-mode target leaves beside this size's working memory.
  const Tensor& lat = init.latents;
  fit_bf16_budget_to(lat.dim(0), lat.dim(2) * lat.dim(3) * downscale() * downscale());
  Tensor latents = denoise(pc, init.latents, progress);
  see("final_latents", latents);
  GenerateResult out;
  out.latents = latents;
  if (!decode) return out;
  out.pixels = decode_pixels(latents);
  out.image = tensor_to_image(out.pixels);
  return out;
}

Tensor StableDiffusion::denoise(PassContext& pc, Tensor latents, const ProgressCallback& progress) const {
  const std::vector<double>& timesteps = pc.plan.timesteps;
  const PassLatents& init = pc.init;
  for (size_t i = 0; i < timesteps.size(); ++i) {
    const double t = timesteps[i];
    Tensor eps = predict_noise(pc, latents, i);
    latents = pc.sched.step(eps, t, latents, &pc.gen);
    if (pc.inpaint && !pc.unet_inpaint) {
      // An ordinary model inpaints by putting the (re-noised) original back outside the mask after every step.
      Tensor proper = init.image_latents;
      if (i + 1 < timesteps.size()) proper = pc.sched.add_noise(init.image_latents, init.noise, timesteps[i + 1]);
      Tensor inv = ops::sub(Tensor::full(init.mask_latents.shape(), 1.f), init.mask_latents);
      latents = ops::add(ops::mul(inv, proper), ops::mul(init.mask_latents, latents));
    }
    pc.see(step_name(i), latents);
    if (progress) progress({int(i + 1), int(timesteps.size()), t, pc.pass, pc.passes});
  }
  return latents;
}

Tensor StableDiffusion::predict_noise(PassContext& pc, const Tensor& latents, size_t step) const {
  const GenerateRequest& r = pc.r;
  const double t = pc.plan.timesteps[step];
  // The UNet batch: [uncond, cond_1, ..., cond_k], or just [cond] without guidance.
  const ConditioningBatch batch = pc.cond.at_step(int(step + 1));
  const int64_t B = batch.rows;
  UNetExtras extras;
  if (unet_lora_)
    extras.hooks.layer_delta = [lora = unet_lora_](const std::string& n, const Tensor& x, Tensor& y) {
      lora->apply(n, x, y);
    };
  if (family_ == Family::SDXL) {
    auto or_default = [](int v, int d) { return float(v > 0 ? v : d); };
    std::vector<float> ids;
    for (int64_t b = 0; b < B; ++b)
      for (float v : {or_default(r.original_height, r.height), or_default(r.original_width, r.width),
                      float(r.crop_top), float(r.crop_left), or_default(r.target_height, r.height),
                      or_default(r.target_width, r.width)})
        ids.push_back(v);
    extras.time_ids = Tensor::from_vector({B, 6}, ids);
    extras.text_embeds = batch.pooled;
  }
  auto repeat = [B](const Tensor& x) { return B == 1 ? x : ops::concat(std::vector<Tensor>(size_t(B), x), 0); };
  Tensor x = pc.sched.scale_model_input(repeat(latents), t);
  const Tensor scaled = x;
  if (pc.unet_inpaint && pc.inpaint)
    x = ops::concat({x, repeat(pc.init.mask_latents), repeat(pc.init.masked_image_latents)}, 1);
  if (pc.hypernet) extras.hooks.attention_context = pc.hypernet;
  add_control_residuals(pc, step, scaled, batch.context, extras);
  Tensor out = unet_->forward(x, {float(t)}, batch.context, extras);
  return pc.cond.guided() ? guided_noise(out, batch, r, pc.cond.composable()) : out;
}

void StableDiffusion::add_control_residuals(const PassContext& pc, size_t step, const Tensor& scaled,
                                            const Tensor& context, UNetExtras& extras) const {
  const GenerateRequest& r = pc.r;
  const double t = pc.plan.timesteps[step], n = double(pc.plan.timesteps.size());
  const int64_t B = context.dim(0);
  for (size_t u = 0; u < r.control.size(); ++u) {
    const ControlUnit& cu = r.control[u];
    if (double(step) / n < cu.start || double(step + 1) / n > cu.end || cu.strength == 0) continue;
    // Guess mode with guidance: the ControlNet sees the conditional rows only; the unconditional row gets zeros.
    const bool only_cond = cu.guess_mode && pc.cond.guided() && B > 1;
    auto rows = [&](const Tensor& v) { return only_cond && v.defined() ? v.slice0(1, B) : v; };
    UNetExtras ce;
    ce.text_embeds = rows(extras.text_embeds);
    ce.time_ids = rows(extras.time_ids);
    Tensor cx = rows(scaled);
    Tensor cond = cx.dim(0) == 1 ? pc.control_maps[u]
                                 : ops::concat(std::vector<Tensor>(size_t(cx.dim(0)), pc.control_maps[u]), 0);
    ControlNetOutput res = cu.net->forward(cx, {float(t)}, rows(context), cond, float(cu.strength), cu.guess_mode, ce);
    auto widen = [&](const Tensor& v) {
      return only_cond ? ops::concat({Tensor::zeros(v.slice0(0, 1).shape()), v}, 0) : v;
    };
    auto& down = extras.down_block_additional_residuals;
    for (size_t k = 0; k < res.down_block_residuals.size(); ++k) {
      Tensor d = widen(res.down_block_residuals[k]);
      if (down.size() <= k) down.push_back(d);
      else down[k] = ops::add(down[k], d);
    }
    Tensor m = widen(res.mid_block_residual);
    extras.mid_block_additional_residual =
        extras.mid_block_additional_residual.defined() ? ops::add(extras.mid_block_additional_residual, m) : m;
  }
}

PassSchedule StableDiffusion::pass_schedule(const GenerateRequest& r, const Tensor* hires_init, Scheduler& sched) const {
  const int64_t f = downscale();
  const Shape latent_shape{1, latent_channels(), r.height / f, r.width / f};
  // Timesteps: all of them, or the last strength·N for img2img / inpainting below strength 1.
  sched.set_timesteps(r.steps);
  std::vector<double> timesteps = sched.timesteps();
  double start_t = timesteps.empty() ? 0 : timesteps.front();
  const bool strength_max = r.strength >= 1.0;
  if (r.init_image && !strength_max) {
    schedule::Img2ImgTimesteps ts = schedule::img2img_timesteps(sched, r.steps, r.strength);
    timesteps = ts.timesteps;
    start_t = ts.start_timestep;
  }
  if (hires_init) {
    // A1111's setup_img2img_steps with requested steps: the schedule is longer and only its tail runs, so that the
    // pass takes exactly r.steps steps whatever the strength.
    PIG_CHECK(hires_init->shape() == latent_shape, "hires latents ", shape_str(hires_init->shape()),
              " do not match the second pass's size");
    const int total = int(r.steps / std::min(r.strength, 0.999));
    sched.set_timesteps(total);
    const std::vector<double>& all = sched.timesteps();
    const size_t from = std::min(all.size(), size_t(total - r.steps) * size_t(sched.order()));
    timesteps.assign(all.begin() + int64_t(from), all.end());
    start_t = timesteps.empty() ? 0 : timesteps.front();
  }

  return {timesteps, start_t};
}

PassLatents StableDiffusion::initial_latents(const GenerateRequest& r, const Tensor* hires_init, const PassSchedule& plan,
                                             Scheduler& sched, Generator& gen, const StageProbe& see) const {
  if (!hires_init && r.init_image) {
    return r.mask ? inpaint_latents(r, plan, sched, gen, see) : img2img_latents(r, plan, sched, gen, see);
  }
  const int64_t f = downscale();
  const Shape latent_shape{1, latent_channels(), r.height / f, r.width / f};
  PassLatents out;
  if (hires_init) {
    // sample_hr_pass: a new ImageRNG on the same seed at the larger latent shape; its first draw is the noise.
    out.noise = gen.randn(latent_shape);
    see("noise", out.noise);
    out.latents = plan.timesteps.empty() ? *hires_init : sched.add_noise(*hires_init, out.noise, plan.start_t);
  } else {  // txt2img
    out.noise = r.latents.defined() ? r.latents : gen.randn(latent_shape);
    out.latents = ops::scale(out.noise, float(sched.init_noise_sigma()));
  }
  return out;
}

PassLatents StableDiffusion::img2img_latents(const GenerateRequest& r, const PassSchedule& plan, Scheduler& sched,
                                             Generator& gen, const StageProbe& see) const {
  const float sf = vae_.scaling_factor();
  const int64_t f = downscale(), h = r.height / f, w = r.width / f;
  PassLatents out;
  if (r.resize_mode == ResizeMode::LatentUpscale) {
    // A1111's "Just resize (latent upscale)": the init image encoded at its own size, the latent resized.
    out.image_latents = ops::scale(sample_latents(vae_.encode(image_to_tensor(to_rgb(*r.init_image))), gen), sf);
    out.image_latents = interpolate(out.image_latents, h, w, "bilinear", false);
  } else {
    Tensor image = image_to_tensor(resize_a1111(to_rgb(*r.init_image), r.resize_mode, r.width, r.height));
    out.image_latents = ops::scale(sample_latents(vae_.encode(image), gen), sf);
  }
  see("init_latents", out.image_latents);
  out.noise = r.latents.defined() ? r.latents : gen.randn({1, latent_channels(), h, w});
  see("noise", out.noise);
  out.latents =
      plan.timesteps.empty() ? out.image_latents : sched.add_noise(out.image_latents, out.noise, plan.start_t);
  return out;
}

PassLatents StableDiffusion::inpaint_latents(const GenerateRequest& r, const PassSchedule& plan, Scheduler& sched,
                                             Generator& gen, const StageProbe& see) const {
  using MC = GenerateRequest::MaskedContent;
  const float sf = vae_.scaling_factor();
  const int64_t f = downscale(), h = r.height / f, w = r.width / f, C = latent_channels();
  const Shape latent_shape{1, C, h, w};
  const bool strength_max = r.strength >= 1.0;
  const bool unet_inpaint = unet_->config().in_channels == 2 * C + 1;
  PassLatents out;
  Image init_rgb = resize_a1111(to_rgb(*r.init_image), r.resize_mode, r.width, r.height);
  // The blurred mask at width × height by the request's resize mode (A1111's image_mask, the "fill" content's mask).
  const Image mask_img = resize_a1111(blurred_mask_a1111(*r.mask, r.mask_blur), r.resize_mode, r.width, r.height);
  Tensor mask = mask_to_tensor(mask_img);
  out.mask_latents = resize_nearest(mask, h, w);
  // A1111 paints the masked area from its surroundings first (masking.fill with the blurred, resized mask).
  if (r.masked_content != MC::Original) init_rgb = fill_masked_area(init_rgb, mask_img);
  Tensor image = image_to_tensor(init_rgb);
  if (!unet_inpaint || (!r.latents.defined() && !strength_max)) {
    out.image_latents = ops::scale(sample_latents(vae_.encode(image), gen), sf);
    if (r.masked_content == MC::LatentNoise || r.masked_content == MC::LatentNothing) {
      // A1111: init_latent·(1 − m) + m·(noise from the seed, or nothing), m the latent mask.
      Tensor inv = ops::sub(Tensor::full(out.mask_latents.shape(), 1.f), out.mask_latents);
      Tensor kept = ops::mul(out.image_latents, inv);
      out.image_latents =
          r.masked_content == MC::LatentNothing
              ? kept
              : ops::add(kept, ops::mul(make_generator(r.rng, r.seed)->randn(latent_shape), out.mask_latents));
    }
    see("image_latents", out.image_latents);
  }
  if (r.latents.defined()) {
    out.noise = r.latents;
    out.latents = ops::scale(out.noise, float(sched.init_noise_sigma()));
  } else {
    out.noise = gen.randn(latent_shape);
    out.latents = strength_max            ? ops::scale(out.noise, float(sched.init_noise_sigma()))
                  : plan.timesteps.empty() ? out.image_latents  // strength · steps < 1: nothing to denoise
                                           : sched.add_noise(out.image_latents, out.noise, plan.start_t);
  }
  if (unet_inpaint) {
    // masked_image = image · (mask < 0.5): the part to keep, with the repainted area at 0 (grey).
    Tensor keep = Tensor::empty(mask.shape());
    for (int64_t i = 0; i < mask.numel(); ++i) keep.f32()[i] = mask.f32()[i] < 0.5f ? 1.f : 0.f;
    out.masked_image_latents = ops::scale(sample_latents(vae_.encode(ops::mul(image, keep)), gen), sf);
    see("masked_image_latents", out.masked_image_latents);
  }
  return out;
}

}  // namespace pigment
