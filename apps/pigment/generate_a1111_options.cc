#include "generate_a1111_options.h"

#include <cmath>

#include "core/error.h"
#include "imaging/a1111_geometry.h"
#include "sampling/sampler_names.h"

namespace pigment::cli {
namespace {

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

// The hires fix from --hires-fix / --hr-* (over a recipe's keys), checked.
GenerateRequest::HiresFix hires_fix(GenerateFlags& f, const CLI::App& app, bool denoising_given) {
  GenerateRequest::HiresFix hr = f.hr;
  PIG_CHECK(std::isfinite(hr.scale) && hr.scale >= 1 && hr.scale <= 8, "--hr-scale must be between 1 and 8 (got ",
            hr.scale, ")");
  PIG_CHECK(hr.steps >= 0 && hr.steps <= 1000, "--hr-steps must be between 0 (= --steps) and 1000 (got ", hr.steps,
            ")");
  PIG_CHECK(hr.resize_x >= 0 && hr.resize_y >= 0 && hr.resize_x <= 16384 && hr.resize_y <= 16384,
            "--hr-resize-x/--hr-resize-y must be between 0 (unset) and 16384");
  hr.upscaler = find_hires_upscaler(hr.upscaler).name;  // canonical spelling for the infotext
  if (!given(app, "--hr-denoising-strength") && denoising_given) hr.denoising_strength = f.denoising;
  PIG_CHECK(std::isfinite(hr.denoising_strength) && hr.denoising_strength > 0 && hr.denoising_strength <= 1,
            "--hr-denoising-strength must be in (0, 1] (got ", hr.denoising_strength, ")");
  if (!hr.sampler.empty()) resolve_sampler(hr.sampler);  // an unknown name fails before loading
  if (!hr.schedule.empty()) resolve_schedule(hr.schedule);
  PIG_CHECK(!f.g.gen.init_image, "--hires-fix is for txt2img only (A1111 has no hires fix for img2img or inpainting)");
  return hr;
}

}  // namespace

void add_a1111_options(CLI::App& c, GenerateFlags& f) {
  GenerateRequest::HiresFix& hr = f.hr;
  GenerateRequest& r = f.g.gen;
  c.add_flag("--hires-fix,--hires", f.hires, "A1111 hires fix: generate, upscale, then an img2img pass at the larger size");
  c.add_option("--hr-scale,--hires-scale", hr.scale, "hires fix: upscale factor (1 to 8)")->capture_default_str();
  c.add_option("--hr-upscaler,--hires-upscaler", hr.upscaler,
               "hires fix upscaler: Latent, Latent (antialiased), Latent (bicubic), Latent (bicubic antialiased), "
               "Latent (nearest), Latent (nearest-exact), None, Lanczos, Nearest")
      ->capture_default_str();
  c.add_option("--hr-steps,--hires-steps", hr.steps, "hires fix: second-pass steps (0 = --steps)")
      ->capture_default_str();
  c.add_option("--hr-resize-x,--hires-width", hr.resize_x, "hires fix: target width instead of --hr-scale (0 = unset)")
      ->capture_default_str();
  c.add_option("--hr-resize-y,--hires-height", hr.resize_y,
               "hires fix: target height instead of --hr-scale (0 = unset)")
      ->capture_default_str();
  c.add_option("--hr-denoising-strength,--hires-denoising-strength", hr.denoising_strength,
               "hires fix: denoising strength of the second pass, in (0, 1]")
      ->capture_default_str();
  c.add_option("--denoising-strength", f.denoising,
               "A1111's one denoising strength: the hires pass's, or img2img's (as --strength) when given alone");
  c.add_option("--hr-prompt", hr.prompt, "hires fix: prompt of the second pass (default: --prompt)");
  c.add_option("--hr-negative-prompt", hr.negative_prompt, "hires fix: negative prompt of the second pass");
  c.add_option("--hr-sampler", hr.sampler, "hires fix: sampler of the second pass (default: --sampler)");
  c.add_option("--hr-schedule,--hr-scheduler", hr.schedule, "hires fix: schedule type of the second pass");
  c.add_option("--resize-mode", f.resize_mode,
               "img2img/inpainting: how the init image (and mask) reach -W x -H, A1111's modes with Lanczos: "
               "just-resize, crop (Crop and resize), fill (Resize and fill) or latent-upscale (Just resize (latent "
               "upscale), img2img without a mask)")
      ->capture_default_str();
  c.add_option("--inpaint-area", f.inpaint_area,
               "whole (repaint at the whole image's scale) or masked (A1111 'Only masked': crop around the mask, "
               "inpaint the crop at -W x -H, paste back)")
      ->capture_default_str();
  c.add_option("--inpaint-padding,--inpaint-full-res-padding", r.inpaint_padding,
               "--inpaint-area masked: pixels added around the mask's bounding box")
      ->capture_default_str();
  c.add_option("--masked-content", f.masked_content,
               "what the masked area starts from: original, fill, 'latent noise', 'latent nothing'")
      ->capture_default_str();
  c.add_option("--original-size", f.original_size, "SDXL micro-conditioning original size WxH (default: -W x -H)");
  c.add_option("--crop-coords,--crops-coords-top-left", f.crop_coords,
               "SDXL micro-conditioning crop coordinates TOPxLEFT (default 0x0)");
  c.add_option("--target-size", f.target_size, "SDXL micro-conditioning target size WxH (default: -W x -H)");
}

void apply_a1111_flags(GenerateFlags& f, const CLI::App& app) {
  GenerateRequest& r = f.g.gen;
  const bool denoising_given = given(app, "--denoising-strength");
  if (denoising_given) {
    PIG_CHECK(std::isfinite(f.denoising) && f.denoising >= 0 && f.denoising <= 1,
              "--denoising-strength must be in [0, 1] (got ", f.denoising, ")");
    if (!given(app, "--strength")) r.strength = f.denoising;
  }
  bool hires_flags = false;
  for (const char* flag : {"--hr-scale", "--hr-upscaler", "--hr-steps", "--hr-resize-x", "--hr-resize-y",
                           "--hr-denoising-strength", "--hr-prompt", "--hr-negative-prompt", "--hr-sampler",
                           "--hr-schedule"})
    hires_flags |= given(app, flag);
  PIG_CHECK(f.hires || !hires_flags, "hires options (--hr-*) need --hires-fix");
  if (f.hires) r.hires = hires_fix(f, app, denoising_given);
  if (given(app, "--resize-mode")) r.resize_mode = parse_resize_mode(f.resize_mode);
  PIG_CHECK(r.init_image || r.resize_mode == ResizeMode::JustResize, "--resize-mode needs --init-img");
  if (given(app, "--inpaint-area")) {
    auto only_masked = parse_inpaint_only_masked(f.inpaint_area);
    PIG_CHECK(only_masked, "--inpaint-area: expected whole or masked (A1111: Whole picture, Only masked), got '",
              f.inpaint_area, "'");
    r.inpaint_only_masked = *only_masked;
  }
  PIG_CHECK(r.inpaint_padding >= 0 && r.inpaint_padding <= 4096, "--inpaint-padding must be between 0 and 4096 (got ",
            r.inpaint_padding, ")");
  PIG_CHECK(!r.inpaint_only_masked || r.mask, "--inpaint-area masked needs --mask (and --init-img)");
  if (given(app, "--masked-content")) {
    auto content = parse_masked_content(f.masked_content);
    PIG_CHECK(content, "--masked-content: expected fill, original, latent noise or latent nothing, got '",
              f.masked_content, "'");
    r.masked_content = *content;
  }
  PIG_CHECK(r.mask || r.masked_content == GenerateRequest::MaskedContent::Original,
            "--masked-content needs --mask (and --init-img)");
  if (given(app, "--original-size")) {
    auto [w, h] = parse_pair(f.original_size, "--original-size");
    PIG_CHECK(w > 0 && h > 0, "--original-size: width and height must be positive");
    r.original_width = w;
    r.original_height = h;
  }
  if (given(app, "--crop-coords")) {
    std::tie(r.crop_top, r.crop_left) = parse_pair(f.crop_coords, "--crop-coords");
    f.g.crop_coords_given = true;
  }
  if (given(app, "--target-size")) {
    auto [w, h] = parse_pair(f.target_size, "--target-size");
    PIG_CHECK(w > 0 && h > 0, "--target-size: width and height must be positive");
    r.target_width = w;
    r.target_height = h;
  }
}

void check_a1111_family(const GenerationRequest& g, Family family) {
  if (family == Family::SDXL) return;
  const GenerateRequest& r = g.gen;
  PIG_CHECK(r.original_width == 0 && r.original_height == 0 && !g.crop_coords_given && r.target_width == 0 &&
                r.target_height == 0,
            "--original-size, --crop-coords and --target-size are SDXL micro-conditioning; this model is ",
            family_name(family));
}

}  // namespace pigment::cli
