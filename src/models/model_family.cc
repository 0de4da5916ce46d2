#include "models/model_family.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "models/checkpoint_layout.h"

namespace pigment {

const char* family_name(Family f) {
  switch (f) {
    case Family::SD1: return "sd1";
    case Family::SD2: return "sd2";
    case Family::SDXL: return "sdxl";
  }
  return "?";
}

namespace {

using json = nlohmann::json;

// ---- full-size configs (diffusers 0.25 / transformers 4.36 config.json contents) ----

// UNet2DConditionModel as diffusers writes it, with the SD1.5 values; the other families patch it.
const char* kUNetBase = R"({
  "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.25.1",
  "act_fn": "silu", "addition_embed_type": null, "addition_embed_type_num_heads": 64,
  "addition_time_embed_dim": null, "attention_head_dim": 8, "attention_type": "default",
  "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false, "class_embed_type": null,
  "class_embeddings_concat": false, "conv_in_kernel": 3, "conv_out_kernel": 3, "cross_attention_dim": 768,
  "cross_attention_norm": null,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "downsample_padding": 1, "dropout": 0.0, "dual_cross_attention": false, "encoder_hid_dim": null,
  "encoder_hid_dim_type": null, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4,
  "layers_per_block": 2, "mid_block_only_cross_attention": null, "mid_block_scale_factor": 1,
  "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05, "norm_num_groups": 32,
  "num_attention_heads": null, "num_class_embeds": null, "only_cross_attention": false, "out_channels": 4,
  "projection_class_embeddings_input_dim": null, "resnet_out_scale_factor": 1.0, "resnet_skip_time_act": false,
  "resnet_time_scale_shift": "default", "reverse_transformer_layers_per_block": null, "sample_size": 64,
  "time_cond_proj_dim": null, "time_embedding_act_fn": null, "time_embedding_dim": null,
  "time_embedding_type": "positional", "timestep_post_act": null, "transformer_layers_per_block": 1,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  "upcast_attention": false, "use_linear_projection": false
})";

// SD2: OpenCLIP-H context, linear projections, 64-channel heads (diffusers stores the head count per level in
// attention_head_dim).
const char* kUNetSd21 = R"({
  "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024, "use_linear_projection": true
})";
const char* kUNetSd21v = R"({
  "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024, "use_linear_projection": true,
  "sample_size": 96, "upcast_attention": true
})";
const char* kUNetSdxl = R"({
  "addition_embed_type": "text_time", "addition_time_embed_dim": 256, "attention_head_dim": [5, 10, 20],
  "block_out_channels": [320, 640, 1280], "cross_attention_dim": 2048,
  "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
  "projection_class_embeddings_input_dim": 2816, "sample_size": 128, "transformer_layers_per_block": [1, 2, 10],
  "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], "use_linear_projection": true
})";

const char* kVaeBase = R"({
  "_class_name": "AutoencoderKL", "_diffusers_version": "0.25.1", "act_fn": "silu",
  "block_out_channels": [128, 256, 512, 512],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "force_upcast": true, "in_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
  "out_channels": 3, "sample_size": 512, "scaling_factor": 0.18215,
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
})";

// OpenAI CLIP ViT-L/14 text tower (SD1, SDXL encoder 1).
const char* kClipL = R"({
  "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
  "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 768, "initializer_factor": 1.0,
  "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
  "model_type": "clip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
  "projection_dim": 768, "torch_dtype": "float32", "transformers_version": "4.36.0", "vocab_size": 49408
})";
// OpenCLIP ViT-H/14 text tower as diffusers keeps it for SD2: 23 of its 24 layers (SD2 conditions on the
// penultimate layer), no projection.
const char* kClipH = R"({
  "hidden_act": "gelu", "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
  "num_hidden_layers": 23, "projection_dim": 512
})";
const char* kClipHFile = R"({
  "architectures": ["CLIPTextModelWithProjection"], "hidden_act": "gelu", "hidden_size": 1024,
  "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24, "projection_dim": 1024
})";
// OpenCLIP ViT-bigG/14 text tower with its projection (SDXL encoder 2).
const char* kClipBigG = R"({
  "architectures": ["CLIPTextModelWithProjection"], "hidden_act": "gelu", "hidden_size": 1280,
  "intermediate_size": 5120, "num_attention_heads": 20, "num_hidden_layers": 32, "projection_dim": 1280
})";

const char* kSchedPndm = R"({
  "_class_name": "PNDMScheduler", "_diffusers_version": "0.25.1", "beta_end": 0.012,
  "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false, "num_train_timesteps": 1000,
  "prediction_type": "epsilon", "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
  "timestep_spacing": "leading", "trained_betas": null
})";
const char* kSchedDdimV = R"({
  "_class_name": "DDIMScheduler", "_diffusers_version": "0.25.1", "beta_end": 0.012,
  "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false, "num_train_timesteps": 1000,
  "prediction_type": "v_prediction", "set_alpha_to_one": false, "steps_offset": 1,
  "timestep_spacing": "leading", "trained_betas": null
})";
const char* kSchedEulerXl = R"({
  "_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.25.1", "beta_end": 0.012,
  "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false, "interpolation_type": "linear",
  "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": false,
  "skip_prk_steps": true, "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": null,
  "use_karras_sigmas": false
})";

// pigment-emoji: pigment's own small model (64×64 emoji → 16×16×4 latents). The SD1 layout and code at other sizes:
// a 3-level VAE (downscale 4), a 4-layer CLIP-architecture text encoder of width 256 over pigment's own byte-level
// BPE (its vocabulary size is set from the merges at init), a ~10M-parameter UNet with cross-attention on its two
// lower levels (8×8 and 4×4 latents), heads of 32 channels. Sized to train in about an hour on 2 cores.
const char* kUNetEmoji = R"({
  "attention_head_dim": [2, 4, 8], "block_out_channels": [64, 128, 256], "cross_attention_dim": 256,
  "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
  "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
  "layers_per_block": 1, "sample_size": 16
})";
const char* kVaeEmoji = R"({
  "block_out_channels": [32, 64, 128],
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  "layers_per_block": 1, "norm_num_groups": 32, "sample_size": 64, "scaling_factor": 1.0
})";
const char* kClipEmoji = R"({
  "hidden_size": 256, "intermediate_size": 1024, "num_attention_heads": 4, "num_hidden_layers": 4,
  "projection_dim": 256, "vocab_size": 49408
})";

json patched(const char* base, const char* patch = nullptr) {
  json j = json::parse(base);
  if (patch) j.update(json::parse(patch));
  return j;
}

std::vector<FamilyPreset> make_presets() {
  std::vector<FamilyPreset> v;
  {
    FamilyPreset p;
    p.name = "sd15";
    p.description = "Stable Diffusion 1.5 (512px, epsilon, CLIP ViT-L/14)";
    p.family = Family::SD1;
    p.prediction_type = "epsilon";
    p.pipeline_class = "StableDiffusionPipeline";
    p.modelspec_architecture = "stable-diffusion-v1";
    p.unet = patched(kUNetBase);
    p.vae = patched(kVaeBase);
    p.text_encoder = patched(kClipL);
    p.text_encoder_file = p.text_encoder;
    p.scheduler = patched(kSchedPndm);
    v.push_back(p);
  }
  for (bool vpred : {false, true}) {
    FamilyPreset p;
    p.name = vpred ? "sd21-v" : "sd21";
    p.description = vpred ? "Stable Diffusion 2.1 (768px, v-prediction, OpenCLIP ViT-H/14)"
                          : "Stable Diffusion 2.1 base (512px, epsilon, OpenCLIP ViT-H/14)";
    p.family = Family::SD2;
    p.prediction_type = vpred ? "v_prediction" : "epsilon";
    p.pipeline_class = "StableDiffusionPipeline";
    p.modelspec_architecture = vpred ? "stable-diffusion-v2-768-v" : "stable-diffusion-v2-512";
    p.unet = patched(kUNetBase, vpred ? kUNetSd21v : kUNetSd21);
    p.vae = patched(kVaeBase, vpred ? R"({"sample_size": 768})" : nullptr);
    p.text_encoder = patched(kClipL, kClipH);
    p.text_encoder_file = patched(kClipL, kClipHFile);
    p.scheduler = patched(vpred ? kSchedDdimV : kSchedPndm);
    v.push_back(p);
  }
  {
    FamilyPreset p;
    p.name = "sdxl";
    p.description = "Stable Diffusion XL 1.0 base (1024px, epsilon, CLIP ViT-L/14 + OpenCLIP ViT-bigG/14)";
    p.family = Family::SDXL;
    p.prediction_type = "epsilon";
    p.pipeline_class = "StableDiffusionXLPipeline";
    p.modelspec_architecture = "stable-diffusion-xl-v1-base";
    p.unet = patched(kUNetBase, kUNetSdxl);
    p.vae = patched(kVaeBase, R"({"sample_size": 1024, "scaling_factor": 0.13025})");
    p.text_encoder = patched(kClipL);
    p.text_encoder_file = p.text_encoder;
    p.text_encoder_2 = patched(kClipL, kClipBigG);
    p.scheduler = patched(kSchedEulerXl);
    v.push_back(p);
  }
  {
    FamilyPreset p;
    p.name = "pigment-emoji";
    p.description = "pigment's own emoji model (64px, epsilon, 4-layer text encoder over its own BPE)";
    p.family = Family::SD1;
    p.prediction_type = "epsilon";
    p.pipeline_class = "StableDiffusionPipeline";
    p.modelspec_architecture = "pigment-emoji";
    p.unet = patched(kUNetBase, kUNetEmoji);
    p.vae = patched(kVaeBase, kVaeEmoji);
    p.text_encoder = patched(kClipL, kClipEmoji);
    p.text_encoder_file = p.text_encoder;
    p.scheduler = patched(kSchedPndm);
    p.self_describing = true;
    v.push_back(p);
  }
  return v;
}

const std::vector<FamilyPreset>& presets() {
  static const std::vector<FamilyPreset> p = make_presets();
  return p;
}

// ---- key and shape queries on a tensor map ----

class Keys {
 public:
  explicit Keys(const std::map<std::string, Tensor>& t) : t_(t) {}
  bool has(const std::string& k) const { return t_.count(k) != 0; }
  bool has_prefix(const std::string& p) const {
    auto it = t_.lower_bound(p);
    return it != t_.end() && it->first.compare(0, p.size(), p) == 0;
  }
  const Shape& shape(const std::string& k) const {
    auto it = t_.find(k);
    PIG_CHECK(it != t_.end(), "missing tensor '", k, "' (a single file of this family has it)");
    return it->second.shape();
  }
  // Dimension i (negative counts from the end) of tensor k, checked: a malformed file must not crash detection.
  int64_t dim(const std::string& k, int i, size_t rank = 0) const {
    const Shape& s = shape(k);
    PIG_CHECK(!s.empty() && (rank == 0 || s.size() == rank), "tensor '", k, "' has shape ", shape_str(s),
              rank ? ", expected " + std::to_string(rank) + " dimensions" : std::string(", expected a tensor"));
    int n = int(s.size());
    if (i < 0) i += n;
    PIG_CHECK(i >= 0 && i < n, "tensor '", k, "' has shape ", shape_str(s), ", expected more dimensions");
    return s[size_t(i)];
  }
  // How many i = 0, 1, ... have `prefix + i + suffix`.
  int count(const std::string& prefix, const std::string& suffix) const {
    int n = 0;
    while (has(prefix + std::to_string(n) + suffix)) ++n;
    return n;
  }
  // The first key under `prefix` that ends with `suffix`.
  const std::string* find(const std::string& prefix, const std::string& suffix) const {
    for (auto it = t_.lower_bound(prefix); it != t_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
      if (it->first.size() >= suffix.size() &&
          it->first.compare(it->first.size() - suffix.size(), suffix.size(), suffix) == 0)
        return &it->first;
    return nullptr;
  }
  const std::map<std::string, Tensor>& map() const { return t_; }

 private:
  const std::map<std::string, Tensor>& t_;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::optional<Detection> detect_keys(const std::map<std::string, Tensor>& tensors, std::string* why) {
  Keys k(tensors);
  const std::string U = file_prefix::kUNet;
  Detection d;
  bool sgm = k.has_prefix("conditioner.embedders.");
  bool label = k.has(U + "label_emb.0.0.weight");
  bool openai = k.has_prefix(file_prefix::kSd1Clip);
  bool openclip = k.has_prefix(file_prefix::kSd2OpenClip);
  bool unet = false;
  if (k.has(U + "input_blocks.0.0.weight")) {
    unet = true;
    d.in_channels = k.dim(U + "input_blocks.0.0.weight", 1);
    if (const auto* key = k.find(U, "attn2.to_k.weight")) d.context_dim = k.dim(*key, -1);
  } else {
    // diffusers names: a bare UNet state dict, or "<component>." prefixes.
    for (const auto& [name, t] : tensors) {
      if (!ends_with(name, "time_embedding.linear_1.weight")) continue;
      std::string p = name.substr(0, name.size() - std::string("time_embedding.linear_1.weight").size());
      if (!k.has(p + "conv_in.weight")) continue;
      unet = true;
      d.single_file = false;
      d.in_channels = k.dim(p + "conv_in.weight", 1);
      if (const auto* key = k.find(p, "attn2.to_k.weight")) d.context_dim = k.dim(*key, -1);
      label = k.has(p + "add_embedding.linear_1.weight");
      break;
    }
  }
  if (sgm || label) {
    if (!k.has_prefix(file_prefix::kSdxlOpenClip) && k.has_prefix("conditioner.embedders.0.model.")) {
      if (why) *why = "an SDXL refiner (conditioner.embedders.0.model, OpenCLIP only): not supported";
      return std::nullopt;
    }
    d.family = Family::SDXL;
    d.evidence = label ? "label_emb / add_embedding" : "conditioner.embedders";
  } else if (openclip) {
    d.family = Family::SD2;
    d.evidence = "OpenCLIP text encoder (cond_stage_model.model)";
  } else if (openai) {
    d.family = Family::SD1;
    d.evidence = "OpenAI CLIP text encoder (cond_stage_model.transformer)";
  } else if (unet && d.context_dim == 768) {
    d.family = Family::SD1;
    d.evidence = "UNet cross-attention width 768";
  } else if (unet && d.context_dim == 1024) {
    d.family = Family::SD2;
    d.evidence = "UNet cross-attention width 1024";
  } else if (unet && d.context_dim == 2048) {
    d.family = Family::SDXL;
    d.evidence = "UNet cross-attention width 2048";
  } else if (k.has_prefix("text_encoder_2.")) {
    d.family = Family::SDXL;
    d.single_file = false;
    d.evidence = "text_encoder_2";
  } else if (const auto* key = k.find("text_encoder.", "text_model.embeddings.token_embedding.weight")) {
    int64_t h = k.dim(*key, -1);
    if (h != 768 && h != 1024) {
      if (why) *why = "text encoder width " + std::to_string(h) + " (768 = SD1, 1024 = SD2)";
      return std::nullopt;
    }
    d.family = h == 768 ? Family::SD1 : Family::SD2;
    d.single_file = false;
    d.evidence = "text encoder width " + std::to_string(h);
  } else {
    if (why) {
      if (!unet)
        *why = "no UNet (model.diffusion_model.*) and no text encoder (cond_stage_model.*, conditioner.*) keys";
      else
        *why = "UNet cross-attention width " + std::to_string(d.context_dim) +
               " matches no family (768 = SD1, 1024 = SD2, 2048 = SDXL) and no text encoder says otherwise";
    }
    return std::nullopt;
  }
  if (d.in_channels != 0 && d.in_channels != 4 && d.in_channels != 9) {
    if (why)
      *why = "UNet with " + std::to_string(d.in_channels) +
             " input channels (4, or 9 for inpainting; depth / pix2pix / upscaler variants are not supported)";
    return std::nullopt;
  }
  d.inpaint = d.in_channels == 9;
  return d;
}

// Never throws: a malformed tensor is a reason, not a crash.
std::optional<Detection> detect_impl(const std::map<std::string, Tensor>& tensors, std::string* why) {
  try {
    return detect_keys(tensors, why);
  } catch (const Error& e) {
    if (why) *why = e.what();
    return std::nullopt;
  }
}

std::vector<std::string> name_tokens(const std::string& path) {
  std::string stem = std::filesystem::path(path).stem().string();
  std::vector<std::string> out;
  std::string cur;
  for (char c : stem) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      cur.push_back(char(std::tolower(static_cast<unsigned char>(c))));
    } else if (!cur.empty()) {
      out.push_back(cur);
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// ---- single-file config inference ----

json infer_unet(const Keys& k, const FamilyPreset& preset, int64_t pooled_dim) {
  const std::string P = file_prefix::kUNet;
  if (!k.has(P + "input_blocks.0.0.weight")) return nullptr;
  json c = preset.unet;
  const Shape& cin = k.shape(P + "input_blocks.0.0.weight");
  PIG_CHECK(cin.size() == 4, "UNet conv_in (", P, "input_blocks.0.0.weight) should be 4-D, got ", shape_str(cin));
  struct Level {
    int64_t ch = 0, nres = 0, depth = 0;
    bool attn = false;
  };
  std::vector<Level> levels(1);
  for (int idx = 1;; ++idx) {
    std::string b = P + "input_blocks." + std::to_string(idx) + ".";
    if (k.has(b + "0.op.weight")) {
      levels.emplace_back();
    } else if (k.has(b + "0.in_layers.0.weight")) {
      Level& l = levels.back();
      l.ch = k.dim(b + "0.out_layers.3.weight", 0);
      ++l.nres;
      if (k.has(b + "1.norm.weight")) {
        l.attn = true;
        l.depth = std::max<int64_t>(l.depth, k.count(b + "1.transformer_blocks.", ".norm1.weight"));
      }
    } else {
      break;
    }
  }
  PIG_CHECK(levels.back().nres > 0, "UNet input_blocks: no resnet after the last downsampler");
  PIG_CHECK(k.has(P + "middle_block.1.norm.weight"), "UNet middle_block has no attention (", P,
            "middle_block.1.*): not a Stable Diffusion UNet");
  json channels = json::array(), types = json::array(), up_types = json::array(), layers = json::array(),
       depth = json::array();
  bool same_layers = true, same_depth = true;
  for (const auto& l : levels) {
    channels.push_back(l.ch);
    types.push_back(l.attn ? "CrossAttnDownBlock2D" : "DownBlock2D");
    layers.push_back(l.nres);
    depth.push_back(l.attn ? l.depth : 1);
    same_layers &= l.nres == levels[0].nres;
  }
  for (const auto& d : depth) same_depth &= d == depth[0];
  for (auto it = levels.rbegin(); it != levels.rend(); ++it)
    up_types.push_back(it->attn ? "CrossAttnUpBlock2D" : "UpBlock2D");
  bool same_channels = c["block_out_channels"] == channels;
  c["block_out_channels"] = channels;
  c["down_block_types"] = types;
  c["up_block_types"] = up_types;
  c["layers_per_block"] = same_layers ? layers[0] : layers;
  c["transformer_layers_per_block"] = same_depth ? depth[0] : depth;
  c["in_channels"] = cin[1];
  c["conv_in_kernel"] = cin[2];
  const Shape& cout = k.shape(P + "out.2.weight");
  c["out_channels"] = k.dim(P + "out.2.weight", 0, 4);
  c["conv_out_kernel"] = cout[2];
  if (const auto* key = k.find(P, "attn2.to_k.weight")) c["cross_attention_dim"] = k.dim(*key, -1);
  if (const auto* key = k.find(P, "proj_in.weight")) c["use_linear_projection"] = k.shape(*key).size() == 2;
  int64_t temb = k.dim(P + "time_embed.0.weight", 0);
  c["time_embedding_dim"] = temb == channels[0].get<int64_t>() * 4 ? json(nullptr) : json(temb);
  if (k.has(P + "label_emb.0.0.weight")) {
    int64_t add_in = k.dim(P + "label_emb.0.0.weight", 1);
    c["addition_embed_type"] = "text_time";
    c["projection_class_embeddings_input_dim"] = add_in;
    // add_in = pooled text embedding + 6 Fourier-embedded size/crop numbers.
    if (pooled_dim > 0 && add_in > pooled_dim && (add_in - pooled_dim) % 6 == 0)
      c["addition_time_embed_dim"] = (add_in - pooled_dim) / 6;
  } else {
    c["addition_embed_type"] = nullptr;
    c["projection_class_embeddings_input_dim"] = nullptr;
    c["addition_time_embed_dim"] = nullptr;
  }
  // Head counts are not in the shapes. SD1 uses 8 heads everywhere; SD2/SDXL use 64-channel heads.
  if (!same_channels && preset.family != Family::SD1) {
    json heads = json::array();
    for (const auto& ch : channels) heads.push_back(std::max<int64_t>(1, ch.get<int64_t>() / 64));
    c["attention_head_dim"] = heads;
  }
  return c;
}

json infer_vae(const Keys& k, const FamilyPreset& preset) {
  const std::string V = file_prefix::kVae;
  if (!k.has(V + "encoder.conv_in.weight")) return nullptr;
  json c = preset.vae;
  int n = k.count(V + "encoder.down.", ".block.0.conv1.weight");
  PIG_CHECK(n >= 1, "VAE encoder has no down levels (", V, "encoder.down.0.block.0.*)");
  json channels = json::array(), down = json::array(), up = json::array();
  for (int i = 0; i < n; ++i) {
    channels.push_back(k.dim(V + "encoder.down." + std::to_string(i) + ".block.0.conv2.weight", 0));
    down.push_back("DownEncoderBlock2D");
    up.push_back("UpDecoderBlock2D");
  }
  c["block_out_channels"] = channels;
  c["down_block_types"] = down;
  c["up_block_types"] = up;
  c["layers_per_block"] = k.count(V + "encoder.down.0.block.", ".conv1.weight");
  c["in_channels"] = k.dim(V + "encoder.conv_in.weight", 1);
  c["latent_channels"] = k.dim(V + "decoder.conv_in.weight", 1);
  c["out_channels"] = k.dim(V + "decoder.conv_out.weight", 0);
  return c;
}

void set_clip_sizes(json& c, int64_t vocab, int64_t hidden, int64_t positions, int64_t layers, int64_t inter) {
  if (c.value("hidden_size", int64_t(0)) != hidden)
    c["num_attention_heads"] = std::max<int64_t>(1, hidden / 64);  // CLIP towers use 64-channel heads
  c["vocab_size"] = vocab;
  c["hidden_size"] = hidden;
  c["max_position_embeddings"] = positions;
  c["num_hidden_layers"] = layers;
  c["intermediate_size"] = inter;
}

json infer_openai_clip(const Keys& k, const std::string& prefix, const json& base) {
  std::string T = prefix + "text_model.";
  if (!k.has(T + "embeddings.token_embedding.weight")) return nullptr;
  json c = base;
  const std::string tok = T + "embeddings.token_embedding.weight";
  int layers = k.count(T + "encoder.layers.", ".mlp.fc1.weight");
  PIG_CHECK(layers >= 1, "text encoder ", T, "encoder.layers.* has no layers");
  set_clip_sizes(c, k.dim(tok, 0, 2), k.dim(tok, 1, 2), k.dim(T + "embeddings.position_embedding.weight", 0), layers,
                 k.dim(T + "encoder.layers.0.mlp.fc1.weight", 0));
  return c;
}

// `drop_last`: SD2 conditions on the penultimate layer, which diffusers expresses as a model one layer shorter.
json infer_open_clip(const Keys& k, const std::string& O, const json& base, bool with_projection, bool drop_last) {
  if (!k.has(O + "token_embedding.weight")) return nullptr;
  json c = base;
  const std::string tok = O + "token_embedding.weight";
  int layers = k.count(O + "transformer.resblocks.", ".mlp.c_fc.weight");
  PIG_CHECK(layers >= (drop_last ? 2 : 1), "OpenCLIP text encoder ", O, "transformer.resblocks.* has ", layers,
            " layers");
  set_clip_sizes(c, k.dim(tok, 0, 2), k.dim(tok, 1, 2), k.dim(O + "positional_embedding", 0),
                 drop_last ? layers - 1 : layers,
                 k.dim(O + "transformer.resblocks.0.mlp.c_fc.weight", 0));
  if (with_projection) {
    c["architectures"] = {"CLIPTextModelWithProjection"};
    if (k.has(O + "text_projection")) c["projection_dim"] = k.dim(O + "text_projection", -1);
  } else {
    c["architectures"] = {"CLIPTextModel"};
  }
  return c;
}

std::string count_str(int64_t n) {
  std::ostringstream os;
  os << n;
  return os.str();
}

}  // namespace

Detection detect_family(const std::map<std::string, Tensor>& tensors, const std::string& source) {
  std::string why;
  auto d = detect_impl(tensors, &why);
  PIG_CHECK(d.has_value(), source, ": unknown model family: ", why);
  return *d;
}

std::optional<Detection> try_detect_family(const std::map<std::string, Tensor>& tensors) {
  return detect_impl(tensors, nullptr);
}

std::string detection_str(const Detection& d) {
  std::string s = family_name(d.family);
  if (d.inpaint) s += " (inpainting)";
  return s;
}

std::string normalize_prediction_type(const std::string& value) {
  std::string v;
  for (char c : value) v.push_back(char(std::tolower(static_cast<unsigned char>(c))));
  if (v == "v" || v == "v_prediction" || v == "v-prediction" || v == "vpred") return "v_prediction";
  if (v == "eps" || v == "epsilon") return "epsilon";
  if (v == "sample" || v == "x0" || v == "x_0") return "sample";  // x0-prediction (diffusers' name)
  fail("--prediction: expected eps, v or sample (x0), got '", value, "'");
}

std::string infer_prediction_type(const Detection& d, const std::string& path,
                                  const std::map<std::string, std::string>& metadata, const std::string& user) {
  if (!user.empty()) return normalize_prediction_type(user);
  auto meta = [&](const char* key) -> std::string {
    auto it = metadata.find(key);
    return it == metadata.end() ? "" : it->second;
  };
  std::string mp = meta("modelspec.prediction_type");
  if (mp.empty()) mp = meta("prediction_type");
  if (!mp.empty()) {
    try {
      return normalize_prediction_type(mp);
    } catch (const Error&) {
      // An unknown value in metadata is not the user's mistake: fall through to the conventions.
    }
  }
  std::string arch = meta("modelspec.architecture");
  if (arch.size() > 2 && arch.compare(arch.size() - 2, 2, "-v") == 0) return "v_prediction";
  if (d.family != Family::SD2) return "epsilon";
  if (meta("global_step") == "875000") return "epsilon";  // the SD2 512-base checkpoints
  auto tokens = name_tokens(path);
  for (const auto& t : tokens)
    if (t == "v" || t == "vpred" || t == "vprediction" || t.find("768") != std::string::npos) return "v_prediction";
  for (const auto& t : tokens)
    if (t == "base" || t == "eps" || t == "epsilon" || t.find("512") != std::string::npos) return "epsilon";
  return d.inpaint ? "epsilon" : "v_prediction";
}

const FamilyPreset& family_preset(const std::string& name) {
  for (const auto& p : presets())
    if (p.name == name) return p;
  std::string names;
  for (const auto& p : presets()) names += (names.empty() ? "" : ", ") + p.name;
  fail("unknown model family '", name, "' (known: ", names, ")");
}

std::vector<std::string> family_preset_names() {
  std::vector<std::string> v;
  for (const auto& p : presets()) v.push_back(p.name);
  return v;
}

const FamilyPreset& default_preset(Family f, const std::string& prediction_type) {
  switch (f) {
    case Family::SD1: return family_preset("sd15");
    case Family::SD2: return family_preset(prediction_type == "v_prediction" ? "sd21-v" : "sd21");
    case Family::SDXL: return family_preset("sdxl");
  }
  fail("unknown family");
}

SingleFileConfigs infer_single_file_configs(const std::map<std::string, Tensor>& tensors, const Detection& d,
                                            const std::string& prediction_type) {
  Keys k(tensors);
  const FamilyPreset& preset = default_preset(d.family, prediction_type);
  SingleFileConfigs out;
  int64_t pooled = 0;
  if (d.family == Family::SDXL) {
    out.text_encoder_prefix = file_prefix::kSdxlClip;
    out.text_encoder_2_prefix = file_prefix::kSdxlOpenClip;
    out.text_encoder = infer_openai_clip(k, out.text_encoder_prefix, preset.text_encoder);
    out.text_encoder_2 = infer_open_clip(k, out.text_encoder_2_prefix, preset.text_encoder_2, true, false);
    if (!out.text_encoder_2.is_null()) pooled = out.text_encoder_2.value("projection_dim", int64_t(0));
  } else if (d.family == Family::SD2) {
    out.text_encoder_prefix = file_prefix::kSd2OpenClip;
    out.text_encoder_open_clip = true;
    out.text_encoder = infer_open_clip(k, out.text_encoder_prefix, preset.text_encoder, false, true);
  } else {
    out.text_encoder_prefix = file_prefix::kSd1Clip;
    out.text_encoder = infer_openai_clip(k, out.text_encoder_prefix, preset.text_encoder);
  }
  out.unet = infer_unet(k, preset, pooled);
  out.vae = infer_vae(k, preset);
  if (!out.unet.is_null() && d.family == Family::SD2 && prediction_type == "v_prediction")
    out.unet["upcast_attention"] = true;  // as SD2.1-v's config (matters for half-precision attention only)
  return out;
}

std::string describe_checkpoint_family(const std::map<std::string, Tensor>& tensors, const std::string& path,
                                       const std::map<std::string, std::string>& metadata) {
  std::string why;
  auto d = detect_impl(tensors, &why);
  if (!d) return "family: unknown (" + why + ")\n";
  std::string s = "family: " + detection_str(*d) + "\n";
  s += "prediction: " + infer_prediction_type(*d, path, metadata) + "\n";
  std::vector<std::pair<std::string, std::vector<std::string>>> parts;
  if (d->single_file) {
    parts = {{"unet", {file_prefix::kUNet}},
             {"vae", {file_prefix::kVae}},
             {"text_encoder", {"cond_stage_model.", "conditioner.embedders.0."}},
             {"text_encoder_2", {"conditioner.embedders.1."}}};
  } else {
    parts = {{"unet", {"unet."}}, {"vae", {"vae."}}, {"text_encoder", {"text_encoder."}},
             {"text_encoder_2", {"text_encoder_2."}}};
  }
  for (const auto& [name, prefixes] : parts) {
    int64_t count = 0, params = 0;
    for (const auto& p : prefixes)
      for (auto it = tensors.lower_bound(p); it != tensors.end() && it->first.compare(0, p.size(), p) == 0; ++it) {
        ++count;
        params += it->second.numel();
      }
    if (count) s += "component " + name + ": " + count_str(count) + " tensors, " + count_str(params) + " parameters\n";
  }
  return s;
}

}  // namespace pigment
