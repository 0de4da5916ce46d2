#include "generate_a1111_options.h"

#include <cmath>

#include "core/error.h"
#include "imaging/a1111_geometry.h"
#include "sampling/sampler_names.h"

namespace pigment::cli {
namespace {

struct A1111Options {
  bool hires = false;
  double hr_scale = 2.0, hr_denoising = 0.7, denoising = 0.75;
  std::string hr_upscaler = "Latent", hr_prompt, hr_negative, hr_sampler, hr_schedule;
  int hr_steps = 0, hr_resize_x = 0, hr_resize_y = 0;
  std::string inpaint_area = "whole", masked_content = "original", resize_mode = "just-resize";
  int inpaint_padding = 32;
  std::string original_size, crop_coords, target_size;
};
A1111Options a;

bool given(const CLI::App& app, const char* name) { return app.count(name) > 0; }

// "WxH" (or "W,H") → two non-negative integers, or a one-line error naming the flag.
std::pair<int, int> parse_pair(const std::string& v, const char* what) {
  size_t sep = v.find_first_of("x,");
  int p = 0, q = 0;
  try {
    size_t u1 = 0, u2 = 0;
    if (sep == std::string::npos) throw std::invalid_argument("");
    p = std::stoi(v.substr(0, sep), &u1);
    q = std::stoi(v.substr(sep + 1), &u2);
    if (u1 != sep || u2 != v.size() - sep - 1) throw std::invalid_argument("");
  } catch (const std::exception&) {
    fail(what, ": expected two integers like 1024x1024, got '", v, "'");
  }
  PIG_CHECK(p >= 0 && q >= 0 && p <= 16384 && q <= 16384, what, ": values must be between 0 and 16384, got '", v, "'");
  return {p, q};
}

GenerateRequest::MaskedContent masked_content(const std::string& v) {
  using MC = GenerateRequest::MaskedContent;
  std::string s;
  for (char c : v) s += c == '-' || c == '_' ? ' ' : char(std::tolower(static_cast<unsigned char>(c)));
  if (s == "fill") return MC::Fill;
  if (s == "original") return MC::Original;
  if (s == "latent noise") return MC::LatentNoise;
  if (s == "latent nothing") return MC::LatentNothing;
  fail("--masked-content: expected fill, original, latent noise or latent nothing, got '", v, "'");
}

bool only_masked(const std::string& v) {
  std::string s;
  for (char c : v) s += char(std::tolower(static_cast<unsigned char>(c)));
  if (s == "masked" || s == "only masked") return true;
  if (s == "whole" || s == "whole picture") return false;
  fail("--inpaint-area: expected whole or masked (A1111: Whole picture, Only masked), got '", v, "'");
}

}  // namespace

void add_a1111_options(CLI::App& c) {
  c.add_flag("--hires-fix,--hires", a.hires, "A1111 hires fix: generate, upscale, then an img2img pass at the larger size");
  c.add_option("--hr-scale,--hires-scale", a.hr_scale, "hires fix: upscale factor (1 to 8)")->capture_default_str();
  c.add_option("--hr-upscaler,--hires-upscaler", a.hr_upscaler,
               "hires fix upscaler: Latent, Latent (antialiased), Latent (bicubic), Latent (bicubic antialiased), "
               "Latent (nearest), Latent (nearest-exact), None, Lanczos, Nearest")
      ->capture_default_str();
  c.add_option("--hr-steps,--hires-steps", a.hr_steps, "hires fix: second-pass steps (0 = --steps)")
      ->capture_default_str();
  c.add_option("--hr-resize-x,--hires-width", a.hr_resize_x, "hires fix: target width instead of --hr-scale (0 = unset)")
      ->capture_default_str();
  c.add_option("--hr-resize-y,--hires-height", a.hr_resize_y,
               "hires fix: target height instead of --hr-scale (0 = unset)")
      ->capture_default_str();
  c.add_option("--hr-denoising-strength,--hires-denoising-strength", a.hr_denoising,
               "hires fix: denoising strength of the second pass, in (0, 1]")
      ->capture_default_str();
  c.add_option("--denoising-strength", a.denoising,
               "A1111's one denoising strength: the hires pass's, or img2img's (as --strength) when given alone");
  c.add_option("--hr-prompt", a.hr_prompt, "hires fix: prompt of the second pass (default: --prompt)");
  c.add_option("--hr-negative-prompt", a.hr_negative, "hires fix: negative prompt of the second pass");
  c.add_option("--hr-sampler", a.hr_sampler, "hires fix: sampler of the second pass (default: --sampler)");
  c.add_option("--hr-schedule,--hr-scheduler", a.hr_schedule, "hires fix: schedule type of the second pass");
  c.add_option("--resize-mode", a.resize_mode,
               "img2img/inpainting: how the init image (and mask) reach -W x -H, A1111's modes with Lanczos: "
               "just-resize, crop (Crop and resize), fill (Resize and fill) or latent-upscale (Just resize (latent "
               "upscale), img2img without a mask)")
      ->capture_default_str();
  c.add_option("--inpaint-area", a.inpaint_area,
               "whole (repaint at the whole image's scale) or masked (A1111 'Only masked': crop around the mask, "
               "inpaint the crop at -W x -H, paste back)")
      ->capture_default_str();
  c.add_option("--inpaint-padding,--inpaint-full-res-padding", a.inpaint_padding,
               "--inpaint-area masked: pixels added around the mask's bounding box")
      ->capture_default_str();
  c.add_option("--masked-content", a.masked_content,
               "what the masked area starts from: original, fill, 'latent noise', 'latent nothing'")
      ->capture_default_str();
  c.add_option("--original-size", a.original_size, "SDXL micro-conditioning original size WxH (default: -W x -H)");
  c.add_option("--crop-coords,--crops-coords-top-left", a.crop_coords,
               "SDXL micro-conditioning crop coordinates TOPxLEFT (default 0x0)");
  c.add_option("--target-size", a.target_size, "SDXL micro-conditioning target size WxH (default: -W x -H)");
}

void apply_a1111_infotext(const Infotext& info, const CLI::App& app, const std::string& path, int& mask_blur) {
  // Strict readers (infotext.h): a malformed value is one error line naming the field and the value.
  auto number = [&](const char* key, auto& dst, const char* flag) {
    auto v = infotext_number(info, key, path);
    if (!v) return false;
    if (!given(app, flag)) dst = static_cast<std::remove_reference_t<decltype(dst)>>(*v);
    return true;
  };
  auto integer = [&](const char* key, auto& dst, const char* flag) {
    auto v = infotext_integer(info, key, path);
    if (!v) return false;
    if (!given(app, flag)) dst = static_cast<std::remove_reference_t<decltype(dst)>>(*v);
    return true;
  };
  auto text = [&](const char* key, std::string& dst, const char* flag) {
    const std::string* v = info.find(key);
    if (v && !given(app, flag)) dst = *v;
    return v != nullptr;
  };
  bool hires = false;
  hires |= number("Hires upscale", a.hr_scale, "--hr-scale");
  if (auto size = infotext_size(info, "Hires resize", path, /*allow_zero=*/true)) {
    hires = true;
    auto [x, y] = *size;
    if (!given(app, "--hr-resize-x")) a.hr_resize_x = x;
    if (!given(app, "--hr-resize-y")) a.hr_resize_y = y;
  }
  hires |= text("Hires upscaler", a.hr_upscaler, "--hr-upscaler");
  hires |= integer("Hires steps", a.hr_steps, "--hr-steps");
  if (hires) {
    a.hires = true;
    if (!given(app, "--denoising-strength")) number("Denoising strength", a.hr_denoising, "--hr-denoising-strength");
    text("Hires prompt", a.hr_prompt, "--hr-prompt");
    text("Hires negative prompt", a.hr_negative, "--hr-negative-prompt");
    text("Hires sampler", a.hr_sampler, "--hr-sampler");
    text("Hires schedule type", a.hr_schedule, "--hr-schedule");
  }
  integer("Mask blur", mask_blur, "--mask-blur");
  if (const std::string* v = info.find("Inpaint area"); v && !given(app, "--inpaint-area")) a.inpaint_area = *v;
  integer("Masked area padding", a.inpaint_padding, "--inpaint-padding");
  text("Masked content", a.masked_content, "--masked-content");
  text("SDXL original size", a.original_size, "--original-size");
  text("SDXL crop coords", a.crop_coords, "--crop-coords");
  text("SDXL target size", a.target_size, "--target-size");
}

void fill_a1111_request(GenerateRequest& r, const CLI::App& app, double& img2img_strength) {
  const bool denoising_given = given(app, "--denoising-strength");
  if (denoising_given) {
    PIG_CHECK(std::isfinite(a.denoising) && a.denoising >= 0 && a.denoising <= 1,
              "--denoising-strength must be in [0, 1] (got ", a.denoising, ")");
    if (!given(app, "--strength")) img2img_strength = a.denoising;
  }
  const bool hires_flags = given(app, "--hr-scale") || given(app, "--hr-upscaler") || given(app, "--hr-steps") ||
                           given(app, "--hr-resize-x") || given(app, "--hr-resize-y") ||
                           given(app, "--hr-denoising-strength") || given(app, "--hr-prompt") ||
                           given(app, "--hr-negative-prompt") || given(app, "--hr-sampler") ||
                           given(app, "--hr-schedule");
  PIG_CHECK(a.hires || !hires_flags, "hires options (--hr-*) need --hires-fix");
  if (a.hires) {
    PIG_CHECK(std::isfinite(a.hr_scale) && a.hr_scale >= 1 && a.hr_scale <= 8,
              "--hr-scale must be between 1 and 8 (got ", a.hr_scale, ")");
    PIG_CHECK(a.hr_steps >= 0 && a.hr_steps <= 1000, "--hr-steps must be between 0 (= --steps) and 1000 (got ",
              a.hr_steps, ")");
    PIG_CHECK(a.hr_resize_x >= 0 && a.hr_resize_y >= 0 && a.hr_resize_x <= 16384 && a.hr_resize_y <= 16384,
              "--hr-resize-x/--hr-resize-y must be between 0 (unset) and 16384");
    GenerateRequest::HiresFix hr;
    hr.scale = a.hr_scale;
    hr.resize_x = a.hr_resize_x;
    hr.resize_y = a.hr_resize_y;
    hr.upscaler = find_hires_upscaler(a.hr_upscaler).name;  // canonical spelling for the infotext
    hr.steps = a.hr_steps;
    hr.denoising_strength = !given(app, "--hr-denoising-strength") && denoising_given ? a.denoising : a.hr_denoising;
    PIG_CHECK(std::isfinite(hr.denoising_strength) && hr.denoising_strength > 0 && hr.denoising_strength <= 1,
              "--hr-denoising-strength must be in (0, 1] (got ", hr.denoising_strength, ")");
    hr.prompt = a.hr_prompt;
    hr.negative_prompt = a.hr_negative;
    if (!a.hr_sampler.empty()) resolve_sampler(a.hr_sampler);  // an unknown name fails before loading
    if (!a.hr_schedule.empty()) resolve_schedule(a.hr_schedule);
    hr.sampler = a.hr_sampler;
    hr.schedule = a.hr_schedule;
    PIG_CHECK(!r.init_image, "--hires-fix is for txt2img only (A1111 has no hires fix for img2img or inpainting)");
    r.hires = hr;
  }
  r.resize_mode = parse_resize_mode(a.resize_mode);
  PIG_CHECK(r.init_image || r.resize_mode == ResizeMode::JustResize, "--resize-mode needs --init-img");
  r.inpaint_only_masked = only_masked(a.inpaint_area);
  PIG_CHECK(a.inpaint_padding >= 0 && a.inpaint_padding <= 4096, "--inpaint-padding must be between 0 and 4096 (got ",
            a.inpaint_padding, ")");
  PIG_CHECK(!r.inpaint_only_masked || r.mask, "--inpaint-area masked needs --mask (and --init-img)");
  r.inpaint_padding = a.inpaint_padding;
  r.masked_content = masked_content(a.masked_content);
  PIG_CHECK(r.mask || r.masked_content == GenerateRequest::MaskedContent::Original,
            "--masked-content needs --mask (and --init-img)");
  if (!a.original_size.empty()) {
    auto [w, h] = parse_pair(a.original_size, "--original-size");
    PIG_CHECK(w > 0 && h > 0, "--original-size: width and height must be positive");
    r.original_width = w;
    r.original_height = h;
  }
  if (!a.crop_coords.empty()) std::tie(r.crop_top, r.crop_left) = parse_pair(a.crop_coords, "--crop-coords");
  if (!a.target_size.empty()) {
    auto [w, h] = parse_pair(a.target_size, "--target-size");
    PIG_CHECK(w > 0 && h > 0, "--target-size: width and height must be positive");
    r.target_width = w;
    r.target_height = h;
  }
}

void check_a1111_family(Family family) {
  if (family == Family::SDXL) return;
  PIG_CHECK(a.original_size.empty() && a.crop_coords.empty() && a.target_size.empty(),
            "--original-size, --crop-coords and --target-size are SDXL micro-conditioning; this model is ",
            family_name(family));
}

bool a1111_crop_coords_set() { return !a.crop_coords.empty(); }

}  // namespace pigment::cli
