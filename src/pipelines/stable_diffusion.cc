#include "pipelines/stable_diffusion.h"

#include "pipelines/memory_mode.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

#include "io/checkpoint.h"
#include "models/checkpoint_layout.h"
#include "ops/ops.h"
#include "ops/precision.h"
#include "imaging/a1111_geometry.h"
#include "imaging/blur.h"
#include "pipelines/latent_sampling.h"
#include "pipelines/prompt_schedule.h"
#include "imaging/resize.h"
#include "sampling/sampler_names.h"
#include "text/prompt_chunks.h"
#include "sampling/noise_schedule.h"
#include "text/tokenizer_files.h"

namespace pigment {

namespace {

// An external VAE file: diffusers names (encoder.down_blocks.*), an LDM VAE (encoder.down.*), or a whole
// checkpoint's first_stage_model.*.
ModelComponent load_external_vae(const std::string& path, const nlohmann::json& config) {
  Checkpoint c = load_checkpoint(path);
  ModelComponent vae;
  vae.name = "vae";
  vae.source = path;
  vae.config = config;
  if (c.tensors.count("encoder.down_blocks.0.resnets.0.conv1.weight")) {
    vae.tensors = std::make_shared<const TensorMap>(c.tensors);
  } else if (c.tensors.count("encoder.down.0.block.0.conv1.weight")) {
    vae.tensors = std::make_shared<const TensorMap>(apply_layout(vae_layout(config, ""), c.tensors, path));
  } else if (c.tensors.count(std::string(file_prefix::kVae) + "encoder.down.0.block.0.conv1.weight")) {
    vae.tensors = std::make_shared<const TensorMap>(apply_layout(vae_layout(config), c.tensors, path));
  } else {
    fail(path, ": not a VAE (no encoder.down_blocks.0.resnets.0.conv1.weight, encoder.down.0.block.0.conv1.weight "
         "or first_stage_model.encoder.down.0.block.0.conv1.weight)");
  }
  return vae;
}

Tensor clamp01(const Tensor& x) {
  Tensor y = Tensor::empty(x.shape());
  const float* s = x.f32();
  float* d = y.f32();
  for (int64_t i = 0; i < x.numel(); ++i) d[i] = std::min(1.f, std::max(0.f, s[i]));
  return y;
}

// [1, 3, H, W] in [0, 1] from an 8-bit image.
Tensor image_to_pixels01(const Image& img) {
  return ops::scale(ops::add(image_to_tensor(img), Tensor::full({1}, 1.f)), 0.5f);
}

// x[:, :, top:top+h, left:left+w]
Tensor crop_latents(const Tensor& x, int64_t top, int64_t left, int64_t h, int64_t w) {
  const int64_t NC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
  Tensor y = Tensor::empty({x.dim(0), x.dim(1), h, w});
  for (int64_t c = 0; c < NC; ++c)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j) y.f32()[(c * h + i) * w + j] = x.f32()[(c * H + top + i) * W + left + j];
  return y;
}

}  // namespace

Tensor image_to_tensor(const Image& img) {
  Image rgb = to_rgb(img);
  Tensor t = Tensor::empty({1, 3, rgb.height, rgb.width});
  int64_t hw = int64_t(rgb.width) * rgb.height;
  for (int64_t i = 0; i < hw; ++i)
    for (int c = 0; c < 3; ++c) t.f32()[c * hw + i] = 2.f * (float(rgb.pixels[i * 3 + c]) / 255.f) - 1.f;
  return t;
}

Image tensor_to_image(const Tensor& pixels01, int index) {
  PIG_CHECK(pixels01.ndim() == 4 && pixels01.dim(1) == 3, "tensor_to_image: expected [B, 3, H, W], got ",
            shape_str(pixels01.shape()));
  int64_t H = pixels01.dim(2), W = pixels01.dim(3), hw = H * W;
  Image img{int(W), int(H), 3, std::vector<uint8_t>(size_t(hw) * 3)};
  const float* p = pixels01.f32() + index * 3 * hw;
  for (int64_t i = 0; i < hw; ++i)
    for (int c = 0; c < 3; ++c)  // as PIL from numpy: (x * 255).round()
      img.pixels[i * 3 + c] = uint8_t(std::lround(std::min(1.f, std::max(0.f, p[c * hw + i])) * 255.f));
  return img;
}

StableDiffusion StableDiffusion::load(const PipelineOptions& options) {
  ops::set_precision(options.precision);
  LoadedModel model = load_model(options.model, options.load);
  if (!options.vae.empty()) model.components["vae"] = load_external_vae(options.vae, model.component("vae").config);
  // --tokenizer, else a diffusers folder's own tokenizer/, else the built-in CLIP table. A diffusers folder's own
  // files carry their pad token; anywhere else the family decides it (SD1 and SDXL's first encoder: <|endoftext|>;
  // SD2 and SDXL's second: "!"), whatever config lies beside the files.
  TokenizerLocation where;
  where.path = options.tokenizer;
  if (model.format == "diffusers") where.model_dir = options.model;
  auto open_tokenizer = [&](const char* family_pad) {
    TokenizerFiles files = find_tokenizer_files(where);
    bool own_files = files.origin == TokenizerFiles::Origin::kModelDir;
    ClipTokenizer t = ClipTokenizer::open(files, own_files);
    if (!own_files) t.set_pad_token(family_pad);
    return t;
  };
  // A self-describing file (pigment's own families) carries its own BPE; --tokenizer still overrides.
  ClipTokenizer tok = !model.tokenizer_merges.empty() && options.tokenizer.empty()
                          ? ClipTokenizer::from_merges(model.tokenizer_merges, options.model + " (tokenizer metadata)")
                          : open_tokenizer(model.family() == Family::SD2 ? ClipTokenizer::kSd2PadToken : "<|endoftext|>");
  std::optional<ClipTokenizer> tok2;
  if (model.family() == Family::SDXL) {
    where.subfolder = "tokenizer_2";
    tok2 = open_tokenizer(ClipTokenizer::kSd2PadToken);
  }
  if (options.low_memory) use_low_memory_settings();
  else use_default_memory_settings(options.precision);
  StableDiffusion sd = create(model, std::move(tok), std::move(tok2));
  sd.low_memory_ = options.low_memory;
  return sd;
}

StableDiffusion StableDiffusion::with_components(const std::map<std::string, ModelComponent>& replaced) const {
  LoadedModel m;
  m.path = "(" + std::to_string(replaced.size()) + " replaced components)";
  m.format = "components";
  m.detection.family = family_;
  m.prediction_type = prediction_type_;
  m.scheduler_config = scheduler_json_;
  m.components = *base_;
  for (const auto& [name, c] : replaced) {
    PIG_CHECK(m.components.count(name), "with_components: the model has no component '", name, "'");
    m.components[name] = c;
  }
  StableDiffusion sd = create(m, *base_tokenizer_,
                              base_tokenizer_2_ ? std::optional<ClipTokenizer>(*base_tokenizer_2_) : std::nullopt);
  sd.low_memory_ = low_memory_;
  return sd;
}

StableDiffusion StableDiffusion::create(const LoadedModel& model, ClipTokenizer tokenizer,
                                        std::optional<ClipTokenizer> tokenizer_2) {
  StableDiffusion sd;
  sd.family_ = model.family();
  sd.prediction_type_ = model.prediction_type;
  sd.scheduler_json_ = model.scheduler_config;
  sd.tokenizer_ = std::make_shared<const ClipTokenizer>(std::move(tokenizer));
  const ModelComponent& te = model.component("text_encoder");
  sd.text_encoder_ = ClipTextModel::load(te.model_config(), te.weights());
  if (sd.family_ == Family::SDXL) {
    PIG_CHECK(tokenizer_2.has_value(), model.path, ": SDXL needs a second tokenizer");
    sd.tokenizer_2_ = std::make_shared<const ClipTokenizer>(std::move(*tokenizer_2));
    const ModelComponent& te2 = model.component("text_encoder_2");
    sd.text_encoder_2_ = ClipTextModel::load(te2.model_config(), te2.weights());
    sd.has_text_encoder_2_ = true;
  }
  const ModelComponent& un = model.component("unet");
  sd.unet_ = std::make_shared<UNet>(UNetConfig::from_json(un.config.dump(), un.source), un.weights());
  const ModelComponent& va = model.component("vae");
  sd.vae_ = Vae::load(va.model_config(), va.weights());
  auto base = std::make_shared<std::map<std::string, ModelComponent>>();
  for (const char* name : {"unet", "vae", "text_encoder", "text_encoder_2"})
    if (model.has(name)) (*base)[name] = model.component(name);
  sd.base_ = base;
  sd.base_tokenizer_ = sd.tokenizer_;
  sd.base_tokenizer_2_ = sd.tokenizer_2_;
  return sd;
}

const ModelComponent& StableDiffusion::base_component(const std::string& name) const {
  PIG_CHECK(base_ && base_->count(name), "the pipeline holds no base component '", name, "'");
  return base_->at(name);
}

void StableDiffusion::set_embeddings(const std::vector<Embedding>& embeddings) {
  if (embeddings.empty()) {
    tokenizer_ = base_tokenizer_;
    tokenizer_2_ = base_tokenizer_2_;
    embeddings_.reset();
    return;
  }
  ClipTokenizer tok = *base_tokenizer_;
  std::optional<ClipTokenizer> tok2;
  if (base_tokenizer_2_) tok2 = *base_tokenizer_2_;
  auto set = std::make_shared<EmbeddingSet>();
  const ClipTextConfig& c1 = text_encoder_.config();
  PIG_CHECK(tok.vocab_size() == c1.vocab_size, "textual inversion: the tokenizer has ", tok.vocab_size(),
            " tokens but the text encoder ", c1.vocab_size);
  for (const Embedding& e : embeddings) {
    set->add(e, tok, c1.vocab_size, c1.hidden_size, has_text_encoder_2_ ? text_encoder_2_.config().hidden_size : 0);
    if (tok2)
      for (int64_t i = 0; i < e.count(); ++i) tok2->add_token(i == 0 ? e.name : e.name + "_" + std::to_string(i));
  }
  tokenizer_ = std::make_shared<const ClipTokenizer>(std::move(tok));
  if (tok2) tokenizer_2_ = std::make_shared<const ClipTokenizer>(std::move(*tok2));
  embeddings_ = set;
}

std::vector<std::string> StableDiffusion::set_loras(const std::vector<LoraChoice>& loras, LoraApply mode) {
  PIG_CHECK(base_, "set_loras: the pipeline holds no base weights");
  std::map<std::string, const TensorMap*> maps;
  for (const auto& [name, c] : *base_)
    if (name != "vae") maps[name] = c.tensors.get();  // LoRAs patch the UNet and the text encoders
  // kohya names SDXL UNet modules by the SGM file's keys; those resolve through the layout table.
  const ModuleAliases aliases = {{"unet", unet_original_module_names(base_component("unet").config)}};
  std::vector<LoraUse> uses, te_uses;  // A1111: text-encoder layers take the TE multiplier, the UNet its own
  std::vector<std::string> unmatched;
  for (const LoraChoice& l : loras) {
    auto r = std::make_shared<const ResolvedLora>(resolve_lora(l.file, maps, aliases));
    for (const auto& u : r->unmatched) unmatched.push_back(l.file.path + ": " + u);
    uses.push_back({r, l.unet_weight});
    te_uses.push_back({r, l.te_weight});
  }
  auto rebuild_clip = [&](const std::string& name, ClipTextModel& model) {
    const ModelComponent& c = base_->at(name);
    model = ClipTextModel::load(c.model_config(), Weights(merge_loras(*c.tensors, name, te_uses), c.source));
  };
  rebuild_clip("text_encoder", text_encoder_);
  if (has_text_encoder_2_) rebuild_clip("text_encoder_2", text_encoder_2_);
  const ModelComponent& un = base_->at("unet");
  UNetConfig cfg = UNetConfig::from_json(un.config.dump(), un.source);
  unet_lora_.reset();
  has_loras_ = !loras.empty();
  if (mode == LoraApply::Merge) {
    unet_ = std::make_shared<UNet>(cfg, Weights(merge_loras(*un.tensors, "unet", uses), un.source));
  } else {
    unet_ = std::make_shared<UNet>(cfg, un.weights());
    auto rt = std::make_shared<const LoraRuntime>("unet", uses);
    if (!rt->empty()) unet_lora_ = rt;
  }
  return unmatched;
}

int64_t StableDiffusion::latent_channels() const { return vae_.config().latent_channels; }

SchedulerConfig StableDiffusion::scheduler_config(const GenerateRequest& r) const {
  nlohmann::json j = scheduler_json_.is_object() ? scheduler_json_ : nlohmann::json::object();
  if (!r.scheduler_config_json.empty()) {
    nlohmann::json o;
    try {
      o = nlohmann::json::parse(r.scheduler_config_json);
    } catch (const std::exception& e) {
      fail("scheduler config override is not valid JSON: ", e.what());
    }
    PIG_CHECK(o.is_object(), "scheduler config override must be a JSON object");
    for (auto it = o.begin(); it != o.end(); ++it) j[it.key()] = it.value();
  }
  if (!j.contains("prediction_type") || j["prediction_type"].is_null()) j["prediction_type"] = prediction_type_;
  // DPM++ SDE's Brownian tree takes the image's seed, as AUTOMATIC1111 seeds it (diffusers would pick a random one).
  if (!j.contains("noise_sampler_seed") || j["noise_sampler_seed"].is_null()) j["noise_sampler_seed"] = r.seed;
  return SchedulerConfig::from_json(j.dump());
}

void StableDiffusion::check_request(const GenerateRequest& r) const {
  int64_t f = downscale();
  PIG_CHECK(r.width > 0 && r.height > 0, "width and height must be positive (got ", r.width, "x", r.height, ")");
  PIG_CHECK(r.width % f == 0 && r.height % f == 0, "width and height must be multiples of ", f, " (got ", r.width,
            "x", r.height, ")");
  PIG_CHECK(int64_t(r.width) * r.height <= 4096ll * 4096, "image size ", r.width, "x", r.height,
            " is too large: at most 16.8 megapixels (4096x4096)");
  PIG_CHECK(r.steps >= 1 && r.steps <= 1000, "steps must be between 1 and 1000 (got ", r.steps, ")");
  PIG_CHECK(r.strength >= 0 && r.strength <= 1, "strength must be in [0, 1] (got ", r.strength, ")");
  PIG_CHECK(std::isfinite(r.cfg_scale), "cfg scale must be a finite number");
  PIG_CHECK(r.clip_skip >= 1 && r.clip_skip <= 12, "clip skip must be between 1 and 12 (got ", r.clip_skip, ")");
  PIG_CHECK(!r.mask || r.init_image, "a mask needs an init image");
  if (r.mask && r.init_image)
    PIG_CHECK(r.mask->width == r.init_image->width && r.mask->height == r.init_image->height, "the mask is ",
              r.mask->width, "x", r.mask->height, " but the init image is ", r.init_image->width, "x",
              r.init_image->height);
  if (r.latents.defined())
    PIG_CHECK(r.latents.shape() == (Shape{1, latent_channels(), r.height / f, r.width / f}), "initial latents ",
              shape_str(r.latents.shape()), " do not match the image size");
  if (r.resize_mode == ResizeMode::LatentUpscale && r.init_image) {
    PIG_CHECK(!r.mask, "resize mode 'latent upscale' is for img2img without a mask (use just-resize, crop or fill)");
    PIG_CHECK(r.init_image->width % f == 0 && r.init_image->height % f == 0, "resize mode 'latent upscale': the init "
              "image's sides must be multiples of ", f, " (got ", r.init_image->width, "x", r.init_image->height, ")");
  }
  PIG_CHECK(r.mask_blur >= 0 && r.mask_blur <= 256, "mask blur must be between 0 and 256 pixels (got ", r.mask_blur,
            ")");
  if (r.inpaint_only_masked) {
    PIG_CHECK(r.mask.has_value(), "inpaint area 'only masked' needs a mask");
    PIG_CHECK(r.inpaint_padding >= 0 && r.inpaint_padding <= 4096,
              "inpaint padding must be between 0 and 4096 pixels (got ", r.inpaint_padding, ")");
  }
  if (r.hires) {
    const GenerateRequest::HiresFix& hr = *r.hires;
    PIG_CHECK(!r.init_image, "the hires fix is for txt2img only (A1111 has none for img2img or inpainting)");
    PIG_CHECK(std::isfinite(hr.scale) && hr.scale >= 1 && hr.scale <= 8, "hires scale must be between 1 and 8 (got ",
              hr.scale, ")");
    PIG_CHECK(hr.resize_x >= 0 && hr.resize_y >= 0 && hr.resize_x <= 16384 && hr.resize_y <= 16384,
              "hires resize width/height must be between 0 (unset) and 16384 (got ", hr.resize_x, "x", hr.resize_y,
              ")");
    PIG_CHECK(hr.denoising_strength > 0 && hr.denoising_strength <= 1,
              "hires denoising strength must be in (0, 1] (got ", hr.denoising_strength, ")");
    PIG_CHECK(hr.steps >= 0 && hr.steps <= 1000, "hires steps must be between 0 (= steps) and 1000 (got ", hr.steps,
              ")");
    find_hires_upscaler(hr.upscaler);
    if (!hr.sampler.empty() || !hr.schedule.empty())
      make_sampler(hr.sampler.empty() ? r.sampler : hr.sampler, scheduler_config(r),
                   hr.schedule.empty() ? r.schedule : hr.schedule);
    HiresGeometry g = hires_geometry(r.width, r.height, hr.scale, hr.resize_x, hr.resize_y, int(f));
    PIG_CHECK(g.width >= f && g.height >= f, "hires size ", g.width, "x", g.height, " is empty");
    PIG_CHECK(int64_t(g.upscale_to_x) * g.upscale_to_y <= 4096ll * 4096, "hires size ", g.upscale_to_x, "x",
              g.upscale_to_y, " is too large: at most 16.8 megapixels (4096x4096)");
  }
}

ClipOptions conditioning_clip_options(Family family, int clip_skip) {
  ClipOptions opt;
  opt.clip_skip = clip_skip;
  if (family == Family::SDXL) {
    opt.clip_skip = clip_skip + 1;
    opt.final_norm = false;
  }
  return opt;
}

PromptEmbeds StableDiffusion::encode_prompt(const std::string& text, const GenerateRequest& r) const {
  // Textual-inversion names stand for all of their tokens.
  const std::string prompt = embeddings_ ? embeddings_->expand(text) : text;
  // One encoder: either the prompt tokenized literally (diffusers) or A1111's weighted 75-token chunks, each
  // encoded alone, emphasis applied per token with the chunk's mean restored, then concatenated.
  auto encode = [&](const ClipTokenizer& tok, const ClipTextModel& model, const ClipOptions& opt, int pad_id) {
    std::vector<PromptChunk> chunks;
    if (r.a1111_syntax) {
      ChunkOptions co;
      co.pad_id = pad_id;
      chunks = chunk_prompt(tok, std::string_view(prompt), co).chunks;
    } else {
      std::vector<int> ids = tok.encode_padded(prompt, ClipTokenizer::kContextLength);
      chunks.push_back({ids, std::vector<double>(ids.size(), 1.0)});
    }
    std::vector<Tensor> zs;
    Tensor pooled;
    for (size_t k = 0; k < chunks.size(); ++k) {
      const PromptChunk& ch = chunks[k];
      ClipOutput out = model.forward({std::vector<int64_t>(ch.ids.begin(), ch.ids.end())}, opt);
      Tensor z = out.context;
      bool weighted = std::any_of(ch.weights.begin(), ch.weights.end(), [](double w) { return w != 1.0; });
      if (weighted) {  // A1111 "Original" emphasis: z · w per token, then rescaled to the chunk's former mean
        z = z.clone();
        int64_t T = z.dim(1), D = z.dim(2);
        float before = ops::mean_all(z);
        for (int64_t t = 0; t < T; ++t)
          for (int64_t d = 0; d < D; ++d) z.f32()[t * D + d] *= float(ch.weights[t]);
        float after = ops::mean_all(z);
        z = ops::scale(z, before / after);
      }
      zs.push_back(z);
      if (k == 0) pooled = out.text_embeds;
    }
    return std::make_pair(zs.size() == 1 ? zs[0] : ops::concat(zs, 1), pooled);
  };
  PromptEmbeds e;
  if (family_ == Family::SDXL) {
    // Both encoders' penultimate hidden states without the final norm, concatenated; pooled from encoder 2.
    ClipOptions opt = conditioning_clip_options(family_, r.clip_skip);
    ClipOptions opt2 = opt;
    if (embeddings_) {
      opt.extra_rows = &embeddings_->extra_rows();
      opt2.extra_rows = &embeddings_->extra_rows_2();
    }
    auto a = encode(*tokenizer_, text_encoder_, opt, -1);
    auto b = encode(*tokenizer_2_, text_encoder_2_, opt2, ClipTokenizer::kSd2PadId);
    PIG_CHECK(a.first.dim(1) == b.first.dim(1), "SDXL: the two tokenizers split the prompt into different chunks");
    e.context = ops::concat({a.first, b.first}, -1);
    e.pooled = b.second;
  } else {
    ClipOptions opt = conditioning_clip_options(family_, r.clip_skip);
    if (embeddings_) opt.extra_rows = &embeddings_->extra_rows();
    e.context = encode(*tokenizer_, text_encoder_, opt, family_ == Family::SD2 ? ClipTokenizer::kSd2PadId : -1).first;
  }
  return e;
}

GenerateResult StableDiffusion::generate(const GenerateRequest& r, const ProgressCallback& progress,
                                         const PipelineProbe& probe) const {
  check_request(r);
  if (r.hires) return generate_hires(r, progress, probe);
  if (r.inpaint_only_masked && r.mask) return generate_only_masked(r, progress, probe);
  return run_pass(r, nullptr, 1, 1, true, progress, probe);
}

Tensor StableDiffusion::decode_pixels(const Tensor& latents) const {
  memory_phase_boundary();  // nor the UNet's while decoding
  // With AVX-512 BF16 but no AMX the decoder's bf16 convolutions are slower than its float32 ones (banded Winograd
  // and the activations' layout conversions they save): 5.57 against 4.38 s at 512² (AMD EPYC, 2026-12-07,
  // precision_bench). There Fast and Int8 decode in float32 (the pixels only gain from it). An int8 decoder (3×3
  // convolutions in int8) was no faster either: 3.88 against 3.53 s, and 35.5 instead of 36.3 dB after 20 steps.
  const ops::Precision asked = ops::precision();
  std::optional<ops::ScopedPrecision> fp32_decoder;
  if ((asked == ops::Precision::Fast || asked == ops::Precision::Int8) && ops::fast_path() == ops::FastPath::Avx512Bf16)
    fp32_decoder.emplace(ops::Precision::Fp32);
  Tensor decoded = vae_.decode(ops::scale(latents, 1.f / vae_.scaling_factor()), decode_tiling(low_memory_));
  Tensor pixels = clamp01(ops::add(ops::scale(decoded, 0.5f), Tensor::full({1}, 0.5f)));
  decoded = Tensor();
  memory_phase_boundary();  // a long-lived process (the server, batches) gets the decoder's work memory back
  return pixels;
}

Image StableDiffusion::decode_latents(const Tensor& latents) const { return tensor_to_image(decode_pixels(latents)); }

GenerateResult StableDiffusion::generate_hires(const GenerateRequest& r, const ProgressCallback& progress,
                                               const PipelineProbe& probe) const {
  const GenerateRequest::HiresFix& hr = *r.hires;
  const HiresUpscaler up = find_hires_upscaler(hr.upscaler);
  const int f = int(downscale());
  const HiresGeometry g = hires_geometry(r.width, r.height, hr.scale, hr.resize_x, hr.resize_y, f);
  GenerateRequest first = r;
  first.hires.reset();
  GenerateResult base = run_pass(first, nullptr, 1, 2, !up.latent, progress, probe);

  // The upscale: the latent itself (torch interpolate), or the decoded image resized and encoded again (the
  // posterior mean, so that the second pass's random draws stay those of its own generator).
  Tensor lat;
  if (up.latent) {
    lat = interpolate(base.latents, g.latent_h, g.latent_w, up.mode, up.antialias);
  } else {
    Image img = upscale_image(base.image, g.latent_w * f, g.latent_h * f, up);
    lat = ops::scale(vae_.encode(image_to_tensor(img)).mode(), vae_.scaling_factor());
  }
  if (g.truncate_x || g.truncate_y)
    lat = crop_latents(lat, g.truncate_y / 2, g.truncate_x / 2, g.latent_h - g.truncate_y, g.latent_w - g.truncate_x);
  if (probe) probe("hires.upscaled_latents", lat);

  GenerateRequest second = r;
  second.hires.reset();
  second.width = g.width;
  second.height = g.height;
  second.steps = hr.steps > 0 ? hr.steps : r.steps;
  second.strength = hr.denoising_strength;
  if (!hr.prompt.empty()) second.prompt = hr.prompt;
  if (!hr.negative_prompt.empty()) second.negative_prompt = hr.negative_prompt;
  if (!hr.sampler.empty()) second.sampler = hr.sampler;
  if (!hr.schedule.empty()) second.schedule = hr.schedule;
  second.latents = Tensor();
  return run_pass(second, &lat, 2, 2, true, progress, probe);
}

GenerateResult StableDiffusion::generate_only_masked(const GenerateRequest& r, const ProgressCallback& progress,
                                                     const PipelineProbe& probe) const {
  // A1111's inpaint_full_res: the crop is found on the blurred mask, and that mask is the paste's alpha.
  const Image init = to_rgb(*r.init_image);
  const Image mask = blurred_mask_a1111(*r.mask, r.mask_blur);
  std::optional<CropRegion> region = mask_crop_region(mask, r.inpaint_padding);
  PIG_CHECK(region.has_value(), "inpaint area 'only masked': the mask is all black (nothing to repaint)");
  const CropRegion c = expand_crop_region(*region, r.width, r.height, mask.width, mask.height);
  GenerateRequest inner = r;
  inner.inpaint_only_masked = false;
  inner.mask_blur = 0;
  inner.init_image = resize_fill(crop_image(init, c), r.width, r.height);
  inner.mask = resize_fill(crop_image(mask, c), r.width, r.height);
  GenerateResult res = run_pass(inner, nullptr, 1, 1, true, progress, probe);
  res.image = paste_with_alpha(init, resize_crop(res.image, c.width(), c.height()), c, mask);
  res.pixels = image_to_pixels01(res.image);
  return res;
}

}  // namespace pigment
