#include "pipelines/generation_request.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include "imaging/a1111_geometry.h"
#include "ops/precision.h"
#include "io/file_hash.h"
#include "models/textual_inversion.h"
#include "sampling/sampler_names.h"
#include "text/extra_networks.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;

std::string lower_words(const std::string& v) {
  std::string s;
  for (char c : v) s += c == '-' || c == '_' ? ' ' : char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const char* masked_content_label(GenerateRequest::MaskedContent m) {
  using MC = GenerateRequest::MaskedContent;
  return m == MC::Fill ? "fill" : m == MC::LatentNoise ? "latent noise" : m == MC::LatentNothing ? "latent nothing"
                                                                                                 : "original";
}

// "WxH" with two integers ≥ 0, for the SDXL size keys; one line naming source and field otherwise.
std::pair<int, int> size_value(const Infotext& info, const char* key, const std::string& source) {
  auto v = infotext_size(info, key, source, /*allow_zero=*/true);
  return v ? *v : std::pair<int, int>{0, 0};
}

// "FILE:WEIGHT" → (FILE, WEIGHT); a suffix that is no number belongs to the path.
std::pair<std::string, float> file_and_weight(const std::string& arg) {
  size_t colon = arg.rfind(':');
  if (colon != std::string::npos && colon + 1 < arg.size()) {
    try {
      size_t used = 0;
      float w = std::stof(arg.substr(colon + 1), &used);
      if (used == arg.size() - colon - 1) return {arg.substr(0, colon), w};
    } catch (const std::exception&) {
    }
  }
  return {arg, 1.f};
}

// NAME.{safetensors,pt,ckpt,bin} in `dir`, or a one-line error naming the tag and the folder.
std::string find_named_file(const std::string& dir, const std::string& name, const char* flag, const std::string& tag) {
  PIG_CHECK(!dir.empty(), tag, ": no ", flag, " given to look for '", name, "' in");
  PIG_CHECK(name.find('/') == std::string::npos && name.find('\\') == std::string::npos && name != ".." &&
                name != ".",
            tag, ": '", name, "' is not a plain name");
  for (const char* ext : {".safetensors", ".pt", ".ckpt", ".bin"}) {
    fs::path p = fs::path(dir) / (name + ext);
    if (fs::is_regular_file(p)) return p.string();
  }
  fail(tag, ": no file named '", name, "' (.safetensors/.pt/.ckpt) in ", flag, " ", dir);
}

// A1111's "NAME: hash12" item of Lora hashes / TI hashes: ':' and ',' are dropped from the name.
std::string hash_item(std::string name, const std::string& hash) {
  std::erase_if(name, [](char c) { return c == ':' || c == ','; });
  return name + ": " + hash.substr(0, 12);
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

void validate(const GenerationRequest& g, const RequestLimits& limits) {
  const GenerateRequest& r = g.gen;
  auto check = [](bool ok, const char* field, const auto&... why) {
    if (ok) return;
    std::ostringstream os;
    detail::append(os, why...);
    throw FieldError(field, os.str());
  };
  check(r.width >= 8 && r.width <= 16384, "width", "must be between 8 and 16384 (got ", r.width, ")");
  check(r.height >= 8 && r.height <= 16384, "height", "must be between 8 and 16384 (got ", r.height, ")");
  check(r.width % 8 == 0, "width", "must be a multiple of 8 (got ", r.width, ")");
  check(r.height % 8 == 0, "height", "must be a multiple of 8 (got ", r.height, ")");
  check(int64_t(r.width) * r.height <= limits.max_pixels, "width", r.width, "x", r.height, " is more than ",
        limits.max_pixels, " pixels, this server's limit");
  check(r.steps >= 1 && r.steps <= limits.max_steps, "steps", "must be between 1 and ", limits.max_steps, " (got ",
        r.steps, ")");
  check(std::isfinite(r.cfg_scale) && std::abs(r.cfg_scale) <= 100, "cfg_scale", "must be a number in [-100, 100]");
  check(std::isfinite(r.guidance_rescale) && r.guidance_rescale >= 0 && r.guidance_rescale <= 1, "guidance_rescale",
        "must be in [0, 1]");
  check(g.batch_count >= 1 && g.batch_count <= limits.max_batch, "batch_size", "n_iter × batch_size must be between 1 and ",
        limits.max_batch, " (got ", g.batch_count, ")");
  check(g.seed >= -1 && g.seed <= int64_t(0xffffffffll), "seed", "must be -1 (random) or in [0, 4294967295] (got ",
        g.seed, ")");
  check(r.clip_skip >= 1 && r.clip_skip <= 12, "CLIP_stop_at_last_layers", "clip skip must be between 1 and 12 (got ",
        r.clip_skip, ")");
  check(r.rng == "cpu" || r.rng == "cuda", "randn_source", "must be GPU or CPU");
  try {
    resolve_sampler(r.sampler);
  } catch (const Error& e) {
    throw FieldError("sampler_name", e.what());
  }
  try {
    resolve_schedule(r.schedule);
  } catch (const Error& e) {
    throw FieldError("scheduler", e.what());
  }
  check(std::isfinite(r.strength) && r.strength >= 0 && r.strength <= 1, "denoising_strength",
        "must be in [0, 1] (got ", r.strength, ")");
  check(!r.mask || r.init_image, "mask", "a mask needs an init image");
  if (r.mask && r.init_image)
    check(r.mask->width == r.init_image->width && r.mask->height == r.init_image->height, "mask", "the mask is ",
          r.mask->width, "x", r.mask->height, " but the init image is ", r.init_image->width, "x",
          r.init_image->height);
  check(r.mask_blur >= 0 && r.mask_blur <= 256, "mask_blur", "must be between 0 and 256 pixels (got ", r.mask_blur,
        ")");
  check(r.inpaint_padding >= 0 && r.inpaint_padding <= 4096, "inpaint_full_res_padding",
        "must be between 0 and 4096 pixels (got ", r.inpaint_padding, ")");
  if (r.hires) {
    const GenerateRequest::HiresFix& hr = *r.hires;
    check(!r.init_image, "enable_hr", "the hires fix is for txt2img only");
    check(std::isfinite(hr.scale) && hr.scale >= 1 && hr.scale <= 8, "hr_scale", "must be between 1 and 8 (got ",
          hr.scale, ")");
    check(hr.resize_x >= 0 && hr.resize_x <= 16384, "hr_resize_x", "must be between 0 (unset) and 16384");
    check(hr.resize_y >= 0 && hr.resize_y <= 16384, "hr_resize_y", "must be between 0 (unset) and 16384");
    check(hr.steps >= 0 && hr.steps <= limits.max_steps, "hr_second_pass_steps", "must be between 0 and ",
          limits.max_steps, " (got ", hr.steps, ")");
    check(std::isfinite(hr.denoising_strength) && hr.denoising_strength > 0 && hr.denoising_strength <= 1,
          "denoising_strength", "the hires pass needs a strength in (0, 1] (got ", hr.denoising_strength, ")");
    try {
      find_hires_upscaler(hr.upscaler);
    } catch (const Error& e) {
      throw FieldError("hr_upscaler", e.what());
    }
    if (!hr.sampler.empty()) try {
        resolve_sampler(hr.sampler);
      } catch (const Error& e) {
        throw FieldError("hr_sampler_name", e.what());
      }
    if (!hr.schedule.empty()) try {
        resolve_schedule(hr.schedule);
      } catch (const Error& e) {
        throw FieldError("hr_scheduler", e.what());
      }
    // The second pass's size (A1111's rules, imaging/a1111_geometry.h) is bounded like the first.
    int tw = hr.resize_x, th = hr.resize_y;
    if (tw == 0 && th == 0) {
      tw = int(r.width * hr.scale);
      th = int(r.height * hr.scale);
    } else if (tw == 0) {
      tw = th * r.width / std::max(r.height, 1);
    } else if (th == 0) {
      th = tw * r.height / std::max(r.width, 1);
    }
    check(int64_t(tw) * th <= limits.max_pixels, "hr_scale", "the hires pass's ", tw, "x", th, " is more than ",
          limits.max_pixels, " pixels, this server's limit");
  }
  check(g.lora_apply == "merge" || g.lora_apply == "runtime", "lora_apply", "must be merge or runtime");
}

GenerateRequest pipeline_request(const GenerationRequest& g, uint64_t seed, const std::string& prompt,
                                 const std::string& negative) {
  GenerateRequest r = g.gen;
  r.seed = seed;
  r.prompt = prompt;
  r.negative_prompt = negative;
  if (g.mask_invert && r.mask)
    for (auto& p : r.mask->pixels) p = uint8_t(255 - p);
  return r;
}

void apply_infotext(GenerationRequest& g, const Infotext& info, const std::string& source) {
  GenerateRequest& r = g.gen;
  r.prompt = info.prompt;
  r.negative_prompt = info.negative_prompt;
  if (auto v = infotext_integer(info, "Steps", source)) r.steps = int(*v);
  if (auto v = infotext_number(info, "CFG scale", source)) r.cfg_scale = *v;
  if (auto v = infotext_integer(info, "Clip skip", source)) r.clip_skip = int(*v);
  auto strength = infotext_number(info, "Denoising strength", source);
  if (strength) r.strength = *strength;
  if (auto v = infotext_number(info, "CFG Rescale phi", source)) r.guidance_rescale = *v;
  if (auto v = infotext_integer(info, "Seed", source)) g.seed = *v;
  if (const std::string* v = info.find("Sampler")) r.sampler = *v;
  if (const std::string* v = info.find("Schedule type")) r.schedule = *v;
  const std::string* rng = info.find("RNG");
  r.rng = rng && *rng == "CPU" ? "cpu" : "cuda";
  if (auto size = infotext_size(info, "Size", source)) std::tie(r.width, r.height) = *size;
  // The hires fix: any of its keys turns it on; "Denoising strength" is then its pass's.
  bool hires = false;
  GenerateRequest::HiresFix hr = r.hires.value_or(GenerateRequest::HiresFix{});
  if (auto v = infotext_number(info, "Hires upscale", source)) hires = true, hr.scale = *v;
  if (auto v = infotext_size(info, "Hires resize", source, /*allow_zero=*/true))
    hires = true, hr.resize_x = v->first, hr.resize_y = v->second;
  if (const std::string* v = info.find("Hires upscaler")) hires = true, hr.upscaler = *v;
  if (auto v = infotext_integer(info, "Hires steps", source)) hires = true, hr.steps = int(*v);
  if (hires) {
    if (strength) hr.denoising_strength = *strength;
    if (const std::string* v = info.find("Hires prompt")) hr.prompt = *v;
    if (const std::string* v = info.find("Hires negative prompt")) hr.negative_prompt = *v;
    if (const std::string* v = info.find("Hires sampler")) hr.sampler = *v;
    if (const std::string* v = info.find("Hires schedule type")) hr.schedule = *v;
    r.hires = hr;
  }
  if (auto v = infotext_integer(info, "Mask blur", source)) r.mask_blur = int(*v);
  if (const std::string* v = info.find("Inpaint area")) {
    auto only_masked = parse_inpaint_only_masked(*v);
    PIG_CHECK(only_masked, source, ": infotext field 'Inpaint area': '", *v, "' is not Whole picture or Only masked");
    r.inpaint_only_masked = *only_masked;
  }
  if (auto v = infotext_integer(info, "Masked area padding", source)) r.inpaint_padding = int(*v);
  if (const std::string* v = info.find("Masked content")) {
    auto mc = parse_masked_content(*v);
    PIG_CHECK(mc, source, ": infotext field 'Masked content': '", *v,
              "' is not fill, original, latent noise or latent nothing");
    r.masked_content = *mc;
  }
  if (info.find("SDXL original size"))
    std::tie(r.original_width, r.original_height) = size_value(info, "SDXL original size", source);
  if (info.find("SDXL crop coords")) {
    std::tie(r.crop_top, r.crop_left) = size_value(info, "SDXL crop coords", source);
    g.crop_coords_given = true;
  }
  if (info.find("SDXL target size"))
    std::tie(r.target_width, r.target_height) = size_value(info, "SDXL target size", source);
}

std::optional<GenerateRequest::MaskedContent> parse_masked_content(const std::string& label) {
  using MC = GenerateRequest::MaskedContent;
  const std::string s = lower_words(label);
  if (s == "fill") return MC::Fill;
  if (s == "original") return MC::Original;
  if (s == "latent noise") return MC::LatentNoise;
  if (s == "latent nothing") return MC::LatentNothing;
  return std::nullopt;
}

std::optional<bool> parse_inpaint_only_masked(const std::string& label) {
  const std::string s = lower_words(label);
  if (s == "only masked" || s == "masked") return true;
  if (s == "whole picture" || s == "whole") return false;
  return std::nullopt;
}

GenerationRequest request_from_infotext(const Infotext& info, const std::string& source) {
  GenerationRequest g;
  apply_infotext(g, info, source);
  return g;
}

std::pair<std::string, std::string> a1111_sampler_names(const std::string& sampler, const std::string& schedule_in) {
  SamplerChoice c = resolve_sampler(sampler);
  std::string schedule = schedule_in.empty() ? "" : resolve_schedule(schedule_in);
  std::string label = sampler;
  for (const auto& l : a1111_sampler_labels())
    if (l.choice.scheduler == c.scheduler && l.choice.schedule.empty()) {
      label = l.label;
      break;
    }
  std::string sched = schedule.empty() ? c.schedule : schedule;
  if (!sched.empty()) {
    for (const auto& s : schedule_labels())
      if (resolve_schedule(s) == sched) {
        sched = s;
        break;
      }
  }
  return {label, sched};
}

Infotext request_infotext(const GenerationRequest& g, uint64_t seed, const RecipeContext& ctx) {
  const GenerateRequest& r = g.gen;
  Infotext info;
  info.prompt = r.prompt;
  info.negative_prompt = r.negative_prompt;
  auto [sampler_label, schedule_label] = a1111_sampler_names(r.sampler, r.schedule);
  info.set("Steps", std::to_string(r.steps));
  info.set("Sampler", sampler_label);
  if (!schedule_label.empty()) info.set("Schedule type", schedule_label);
  info.set("CFG scale", format_number(r.cfg_scale));
  info.set("Seed", std::to_string(seed));
  info.set("Size", std::to_string(r.width) + "x" + std::to_string(r.height));
  if (!ctx.model_hash.empty()) info.set("Model hash", ctx.model_hash);
  info.set("Model", fs::path(ctx.model_path).filename().replace_extension().string());
  if (!ctx.vae_path.empty()) info.set("VAE", fs::path(ctx.vae_path).filename().string());
  if (r.init_image) info.set("Denoising strength", format_number(r.strength));
  else if (r.hires) info.set("Denoising strength", format_number(r.hires->denoising_strength));
  if (r.mask) info.set("Mask blur", std::to_string(r.mask_blur));
  if (r.clip_skip > 1) info.set("Clip skip", std::to_string(r.clip_skip));
  if (r.guidance_rescale > 0) info.set("CFG Rescale phi", format_number(r.guidance_rescale));
  if (r.rng == "cpu") info.set("RNG", "CPU");
  if (r.hires) {  // in the order A1111 adds them to extra_generation_params
    const GenerateRequest::HiresFix& hr = *r.hires;
    if (!hr.sampler.empty() && hr.sampler != r.sampler) info.set("Hires sampler", hr.sampler);
    if (!hr.prompt.empty() && hr.prompt != r.prompt) info.set("Hires prompt", hr.prompt);
    if (!hr.negative_prompt.empty() && hr.negative_prompt != r.negative_prompt)
      info.set("Hires negative prompt", hr.negative_prompt);
    if (!hr.schedule.empty() && hr.schedule != r.schedule) info.set("Hires schedule type", hr.schedule);
    if (hr.resize_x == 0 && hr.resize_y == 0) info.set("Hires upscale", format_number(hr.scale));
    else info.set("Hires resize", std::to_string(hr.resize_x) + "x" + std::to_string(hr.resize_y));
    if (hr.steps > 0) info.set("Hires steps", std::to_string(hr.steps));
    info.set("Hires upscaler", hr.upscaler);
  }
  if (r.mask) {
    if (r.inpaint_only_masked) {
      info.set("Inpaint area", "Only masked");
      info.set("Masked area padding", std::to_string(r.inpaint_padding));
    }
    if (r.masked_content != GenerateRequest::MaskedContent::Original)
      info.set("Masked content", masked_content_label(r.masked_content));
  }
  auto size = [](int w, int h) { return std::to_string(w) + "x" + std::to_string(h); };
  if (r.original_width > 0) info.set("SDXL original size", size(r.original_width, r.original_height));
  if (g.crop_coords_given) info.set("SDXL crop coords", size(r.crop_top, r.crop_left));
  if (r.target_width > 0) info.set("SDXL target size", size(r.target_width, r.target_height));
  // format_infotext quotes the joined lists (they hold ':' and ','), as A1111 writes them.
  if (!ctx.lora_hashes.empty()) info.set("Lora hashes", joined(ctx.lora_hashes));
  if (!ctx.ti_hashes.empty()) info.set("TI hashes", joined(ctx.ti_hashes));
  for (const auto& [k, v] : ctx.extra) info.set(k, v);
  info.set("Precision", ops::precision_used());  // exact or fast: which arithmetic made the picture
  info.set("Version", "pigment");
  return info;
}

Adapters load_adapters(const GenerationRequest& g, const AdapterFolders& folders) {
  Adapters a;
  ExtraNetworkPrompt tags = extract_extra_networks(g.gen.prompt);
  a.prompt = tags.prompt;
  // A1111 activates extra networks from the positive prompt only; tags in the negative prompt are dropped (A1111
  // would encode their text) with a warning.
  ExtraNetworkPrompt negative_tags = extract_extra_networks(g.gen.negative_prompt);
  a.negative_prompt = negative_tags.prompt;
  for (const auto& t : negative_tags.tags)
    a.warnings.push_back(t.tag + " in the negative prompt is ignored (extra networks apply from the prompt only)");
  for (const auto& arg : g.lora_files) {
    auto [file, weight] = file_and_weight(arg);
    PIG_CHECK(fs::exists(file), "--lora: file not found: ", file);
    a.loras.emplace_back(LoraFile::load(file), weight);
    a.lora_hashes.push_back(hash_item(fs::path(file).stem().string(), lora_file_hash(file)));
  }
  for (const auto& t : tags.tags) {
    if (t.kind == "lora" || t.kind == "lyco") {
      std::string file = find_named_file(folders.lora_dir, t.name, "--lora-dir", t.tag);
      if (t.dyn_dim != 0)
        a.warnings.push_back(t.tag + ": dyn=" + std::to_string(t.dyn_dim) +
                             " (rank limit) is ignored; the whole LoRA is applied");
      a.loras.emplace_back(LoraFile::load(file), float(t.te_weight), float(t.unet_weight));
      a.lora_hashes.push_back(hash_item(t.name, lora_file_hash(file)));
    } else if (t.kind == "hypernet") {
      std::string file = find_named_file(folders.hypernetwork_dir, t.name, "--hypernetwork-dir", t.tag);
      a.hypernetworks.push_back({std::make_shared<const Hypernetwork>(Hypernetwork::load(file, t.name)),
                                 float(t.te_weight)});
    } else {
      a.warnings.push_back(t.tag + ": unknown extra network kind '" + t.kind + "', ignored");
    }
  }
  if (!folders.embedding_dir.empty()) {
    // Only the embeddings a prompt names are read, so an unrelated broken file does not stop a generation.
    for (const auto& file : list_embedding_files(folders.embedding_dir)) {
      std::string name = fs::path(file).stem().string();
      if (g.gen.prompt.find(name) == std::string::npos && g.gen.negative_prompt.find(name) == std::string::npos)
        continue;
      a.embeddings.push_back(load_embedding(file));
      a.ti_hashes.push_back(hash_item(name, sha256_file(file)));
    }
  }
  return a;
}

std::vector<std::string> list_adapter_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    std::string ext = e.path().extension().string();
    if (ext == ".safetensors" || ext == ".pt" || ext == ".ckpt" || ext == ".bin") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace pigment
