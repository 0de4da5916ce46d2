// pigment serve's HTTP side: AUTOMATIC1111's /sdapi/v1 (request fields, defaults and response shapes of its API),
// OpenAI's POST /v1/images/generations, HTTP Basic authentication, CORS, the body size limit, static files of web/.
#include <httplib.h>
#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "imaging/a1111_geometry.h"
#include "io/image.h"
#include "models/textual_inversion.h"
#include "sampling/sampler_names.h"
#include "serve.h"

namespace pigment::cli::serve {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------------------------
// base64

static const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
    out += kB64[v >> 18], out += kB64[(v >> 12) & 63], out += kB64[(v >> 6) & 63], out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    out += kB64[v >> 18], out += kB64[(v >> 12) & 63], out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8;
    out += kB64[v >> 18], out += kB64[(v >> 12) & 63], out += kB64[(v >> 6) & 63], out += '=';
  }
  return out;
}

std::string base64_decode(const std::string& text, const std::string& field) {
  std::string_view s = text;
  if (s.rfind("data:", 0) == 0) {  // data:image/png;base64,....
    size_t comma = s.find(',');
    if (comma == std::string_view::npos || s.substr(0, comma).find(";base64") == std::string_view::npos)
      throw http_error(400, field + ": a data: URL must be base64 (data:image/png;base64,...)");
    s = s.substr(comma + 1);
  }
  std::string out;
  out.reserve(s.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0, pad = 0;
  size_t count = 0;
  for (char c : s) {
    if (c == '\n' || c == '\r') continue;
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+' || c == '-') v = 62;
    else if (c == '/' || c == '_') v = 63;
    else if (c == '=') {
      ++pad;
      ++count;
      continue;
    } else
      throw http_error(400, field + ": not valid base64 (unexpected character)");
    if (pad) throw http_error(400, field + ": not valid base64 (data after '=' padding)");
    acc = acc << 6 | uint32_t(v);
    bits += 6;
    ++count;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  if (pad > 2 || (pad && count % 4 != 0) || count % 4 == 1)
    throw http_error(400, field + ": not valid base64 (bad length or padding)");
  if (out.empty()) throw http_error(400, field + ": empty image data");
  return out;
}

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Reading request fields with FastAPI-like errors: a wrong type is 422 naming the field.

struct Fields {
  const json& j;
  bool has(const char* k) const { return j.contains(k) && !j[k].is_null(); }
  int64_t integer(const char* k, int64_t def) const {
    if (!has(k)) return def;
    const json& v = j[k];
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && std::abs(v.get<double>()) < 1e15)
      return int64_t(v.get<double>());
    throw field_error(k, "Input should be a valid integer", "int_type");
  }
  double number(const char* k, double def) const {
    if (!has(k)) return def;
    const json& v = j[k];
    if (v.is_number()) return v.get<double>();
    throw field_error(k, "Input should be a valid number", "float_type");
  }
  std::string string(const char* k, const std::string& def) const {
    if (!has(k)) return def;
    const json& v = j[k];
    if (v.is_string()) return v.get<std::string>();
    throw field_error(k, "Input should be a valid string", "string_type");
  }
  bool boolean(const char* k, bool def) const {
    if (!has(k)) return def;
    const json& v = j[k];
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_number_integer() && (v == 0 || v == 1)) return v == 1;
    throw field_error(k, "Input should be a valid boolean", "bool_type");
  }
  int int_in(const char* k, int64_t def, int64_t lo, int64_t hi) const {
    int64_t v = integer(k, def);
    if (v < lo || v > hi)
      throw field_error(k, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + " (got " +
                               std::to_string(v) + ")");
    return int(v);
  }
};

Image decode_b64_image(const std::string& b64, const std::string& field) {
  std::string bytes = base64_decode(b64, field);
  try {
    return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), field);
  } catch (const Error& e) {
    throw http_error(400, std::string(e.what()));
  }
}

json parse_body(const httplib::Request& req) {
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded()) {
    // One line: where the text stops being JSON.
    try {
      json again = json::parse(req.body);
    } catch (const json::parse_error& e) {
      throw http_error(400, "malformed JSON at byte " + std::to_string(e.byte));
    }
    throw http_error(400, "malformed JSON");
  }
  if (!j.is_object()) throw http_error(400, "the body must be a JSON object");
  return j;
}

void unsupported_if(bool cond, const char* field, const std::string& why) {
  if (cond) throw field_error(field, why + " is not supported by pigment", "not_supported");
}

// A1111's txt2img / img2img request → GenerationRequest, with A1111's defaults. `override_model` receives
// override_settings.sd_model_checkpoint.
// One unit of the ControlNet extension's API (alwayson_scripts.controlnet.args[i]); a disabled unit comes back with
// an empty model_path.
ControlRequest control_unit(const json& unit, size_t i, const std::string& cn_dir) {
  const std::string field = "alwayson_scripts.controlnet.args[" + std::to_string(i) + "]";
  ControlRequest c;
  if (!unit.is_object()) throw field_error("alwayson_scripts", field + " must be an object");
  Fields u{unit};
  auto fail_unit = [&](const std::string& why) { return field_error("alwayson_scripts", field + ": " + why); };
  if (!u.boolean("enabled", true)) return c;
  std::string image = u.string("input_image", u.string("image", ""));
  if (image.empty()) throw fail_unit("input_image is required (base64)");
  c.image = decode_b64_image(image, field + ".input_image");
  c.module.name = u.string("module", "none");
  if (c.module.name != "none" && c.module.name != "canny")
    throw fail_unit("module '" + c.module.name + "' is not supported (none, canny)");
  c.module.low = u.number("threshold_a", 100);
  c.module.high = u.number("threshold_b", 200);
  if (c.module.low < 0 || c.module.low > c.module.high) throw fail_unit("need 0 <= threshold_a <= threshold_b");
  std::string model = u.string("model", "");
  std::string bare = model.substr(0, model.find(" ["));  // "name [hash]" as the extension lists it
  for (const auto& [name, path] : controlnet_models(cn_dir))
    if (name == bare) c.model_path = path, c.model_name = name;
  if (c.model_path.empty())
    throw fail_unit("no ControlNet model '" + model + "' in --control-net-dir (GET /controlnet/model_list)");
  c.weight = u.number("weight", 1.0);
  c.start = u.number("guidance_start", 0.0);
  c.end = u.number("guidance_end", 1.0);
  if (!(c.start >= 0 && c.end <= 1 && c.start < c.end)) throw fail_unit("need 0 <= guidance_start < guidance_end <= 1");
  if (!std::isfinite(c.weight) || c.weight < 0 || c.weight > 10) throw fail_unit("weight must be in [0, 10]");
  const json& rm = unit.contains("resize_mode") ? unit["resize_mode"] : json("Crop and Resize");
  if (rm.is_number_integer() && rm >= 0 && rm <= 2) {
    static const ControlResize modes[] = {ControlResize::JustResize, ControlResize::CropAndResize,
                                          ControlResize::ResizeAndFill};
    c.resize = modes[rm.get<int>()];
  } else if (rm.is_string()) {
    try {
      c.resize = parse_control_resize(rm.get<std::string>());
    } catch (const Error& e) {
      throw fail_unit(e.what());
    }
  } else {
    throw fail_unit("resize_mode must be 0-2 or a label such as \"Crop and Resize\"");
  }
  const json& cm = unit.contains("control_mode") ? unit["control_mode"] : json(0);
  if (cm.is_number_integer()) c.control_mode = cm.get<int>();
  else if (cm == "Balanced") c.control_mode = 0;
  else if (cm == "My prompt is more important") c.control_mode = 1;
  else if (cm == "ControlNet is more important") c.control_mode = 2;
  else c.control_mode = -1;
  if (c.control_mode < 0 || c.control_mode > 2) throw fail_unit("control_mode must be 0-2 or its label");
  if (c.control_mode == 1) throw fail_unit("control_mode 'My prompt is more important' is not supported by pigment");
  return c;
}

GenerationRequest a1111_request(const json& body, bool img2img, std::string& override_model, bool& restore,
                                std::vector<ControlRequest>& control, const std::string& cn_dir) {
  Fields f{body};
  GenerationRequest g;
  GenerateRequest& r = g.gen;
  // A1111's API defaults (StableDiffusionProcessing*): 50 steps, "Euler" (sampler_index), 512x512.
  r.steps = 50;
  r.sampler = "Euler";
  r.cfg_scale = 7.0;
  r.width = r.height = 512;
  r.strength = 0.75;
  if (f.has("infotext")) {  // fields pasted from an infotext; the request's own fields win
    try {
      apply_infotext(g, parse_infotext(f.string("infotext", "")), "infotext");
    } catch (const Error& e) {
      throw field_error("infotext", e.what());
    }
  }
  r.prompt = f.string("prompt", r.prompt);
  r.negative_prompt = f.string("negative_prompt", r.negative_prompt);
  if (f.has("styles")) {
    if (!body["styles"].is_array()) throw field_error("styles", "Input should be a valid list", "list_type");
    unsupported_if(!body["styles"].empty(), "styles", "prompt styles");
  }
  g.seed = f.integer("seed", g.seed);
  if (f.number("subseed_strength", 0) != 0) unsupported_if(true, "subseed_strength", "a variation seed");
  unsupported_if(f.integer("seed_resize_from_w", -1) > 0 || f.integer("seed_resize_from_h", -1) > 0,
                 "seed_resize_from_w", "resizing the seed");
  r.sampler = f.string("sampler_name", f.string("sampler_index", r.sampler));
  r.schedule = f.string("scheduler", r.schedule);
  const int64_t batch_size = f.integer("batch_size", 1), n_iter = f.integer("n_iter", 1);
  if (batch_size < 1) throw field_error("batch_size", "must be at least 1");
  if (n_iter < 1) throw field_error("n_iter", "must be at least 1");
  if (batch_size * n_iter > 100000) throw field_error("batch_size", "too many images");
  g.batch_count = int(batch_size * n_iter);
  r.steps = int(f.integer("steps", r.steps));
  r.cfg_scale = f.number("cfg_scale", r.cfg_scale);
  r.width = int(f.integer("width", r.width));
  r.height = int(f.integer("height", r.height));
  unsupported_if(f.boolean("restore_faces", false), "restore_faces", "face restoration");
  unsupported_if(f.boolean("tiling", false), "tiling", "tiling");
  unsupported_if(!f.string("refiner_checkpoint", "").empty(), "refiner_checkpoint", "a refiner");
  unsupported_if(!f.string("script_name", "").empty(), "script_name", "a script");
  if (f.has("clip_skip")) r.clip_skip = int(f.integer("clip_skip", 1));  // stable-diffusion.cpp's field
  r.guidance_rescale = f.number("guidance_rescale", r.guidance_rescale);
  restore = f.boolean("override_settings_restore_afterwards", true);
  if (f.has("override_settings")) {
    const json& o = body["override_settings"];
    if (!o.is_object()) throw field_error("override_settings", "Input should be a valid dictionary", "dict_type");
    Fields of{o};
    if (of.has("CLIP_stop_at_last_layers")) r.clip_skip = int(of.integer("CLIP_stop_at_last_layers", 1));
    if (of.has("randn_source")) {
      std::string s = of.string("randn_source", "GPU");
      if (s != "GPU" && s != "CPU") throw field_error("randn_source", "must be GPU or CPU");
      r.rng = s == "CPU" ? "cpu" : "cuda";
    }
    unsupported_if(of.integer("eta_noise_seed_delta", 0) != 0, "eta_noise_seed_delta", "a seed delta other than 0");
    override_model = of.string("sd_model_checkpoint", "");
  }
  if (f.has("alwayson_scripts")) {
    const json& a = body["alwayson_scripts"];
    if (!a.is_object()) throw field_error("alwayson_scripts", "Input should be a valid dictionary", "dict_type");
    for (const auto& [name, script] : a.items()) {
      std::string lower;
      for (char ch : name) lower += char(std::tolower(static_cast<unsigned char>(ch)));
      const json args = script.is_object() && script.contains("args") ? script["args"] : json::array();
      if (!args.is_array()) throw field_error("alwayson_scripts", name + ".args must be a list");
      if (lower == "controlnet") {
        for (size_t i = 0; i < args.size(); ++i) control.push_back(control_unit(args[i], i, cn_dir));
        continue;
      }
      bool active = false;
      for (const auto& unit : args) active |= !unit.is_object() || unit.value("enabled", true);
      if (active)
        throw field_error("alwayson_scripts", "always-on script '" + name + "' is not supported by pigment serve",
                          "not_supported");
    }
    control.erase(std::remove_if(control.begin(), control.end(), [](const ControlRequest& c) { return c.model_path.empty(); }),
                  control.end());
  }
  const double denoising = f.number("denoising_strength", img2img ? 0.75 : r.strength);
  if (!img2img) {
    if (f.boolean("enable_hr", r.hires.has_value())) {
      GenerateRequest::HiresFix hr = r.hires.value_or(GenerateRequest::HiresFix{});
      hr.scale = f.number("hr_scale", hr.scale);
      hr.upscaler = f.string("hr_upscaler", hr.upscaler);
      hr.steps = int(f.integer("hr_second_pass_steps", hr.steps));
      hr.resize_x = int(f.integer("hr_resize_x", hr.resize_x));
      hr.resize_y = int(f.integer("hr_resize_y", hr.resize_y));
      hr.sampler = f.string("hr_sampler_name", hr.sampler);
      hr.schedule = f.string("hr_scheduler", hr.schedule);
      hr.prompt = f.string("hr_prompt", hr.prompt);
      hr.negative_prompt = f.string("hr_negative_prompt", hr.negative_prompt);
      hr.denoising_strength = f.has("denoising_strength") ? denoising : hr.denoising_strength;
      if (!r.hires && !f.has("denoising_strength")) hr.denoising_strength = 0.75;
      if (hr.sampler == r.sampler) hr.sampler.clear();
      try {
        hr.upscaler = find_hires_upscaler(hr.upscaler).name;
      } catch (const Error& e) {
        throw field_error("hr_upscaler", e.what());
      }
      r.hires = hr;
    } else {
      r.hires.reset();
    }
    return g;
  }
  // img2img
  r.strength = denoising;
  if (!f.has("init_images") || !body["init_images"].is_array() || body["init_images"].empty())
    throw http_error(404, "Init image not found");
  if (!body["init_images"][0].is_string()) throw field_error("init_images", "Input should be a valid string");
  r.init_image = decode_b64_image(body["init_images"][0].get<std::string>(), "init_images[0]");
  r.resize_mode = ResizeMode(f.int_in("resize_mode", 0, 0, 3));
  r.mask_blur = int(f.integer("mask_blur", f.integer("mask_blur_x", 4)));
  if (f.has("mask")) {
    r.mask = decode_b64_image(f.string("mask", ""), "mask");
    using MC = GenerateRequest::MaskedContent;
    static const MC fills[] = {MC::Fill, MC::Original, MC::LatentNoise, MC::LatentNothing};
    r.masked_content = fills[f.int_in("inpainting_fill", 0, 0, 3)];
    r.inpaint_only_masked = f.boolean("inpaint_full_res", true);
    r.inpaint_padding = int(f.integer("inpaint_full_res_padding", 0));
    g.mask_invert = f.int_in("inpainting_mask_invert", 0, 0, 1) == 1;
  }
  return g;
}

// A1111's echo of the request ("parameters"): its defaults with the request's fields over them.
json a1111_parameters(const json& body, bool img2img) {
  json p = {{"prompt", ""}, {"negative_prompt", ""}, {"styles", nullptr}, {"seed", -1}, {"subseed", -1},
            {"subseed_strength", 0}, {"seed_resize_from_h", -1}, {"seed_resize_from_w", -1},
            {"sampler_name", nullptr}, {"scheduler", nullptr}, {"batch_size", 1}, {"n_iter", 1}, {"steps", 50},
            {"cfg_scale", 7.0}, {"width", 512}, {"height", 512}, {"restore_faces", nullptr}, {"tiling", nullptr},
            {"do_not_save_samples", false}, {"do_not_save_grid", false}, {"eta", nullptr},
            {"denoising_strength", img2img ? json(0.75) : json(nullptr)}, {"override_settings", nullptr},
            {"override_settings_restore_afterwards", true}, {"sampler_index", "Euler"}, {"script_name", nullptr},
            {"script_args", json::array()}, {"send_images", true}, {"save_images", false},
            {"alwayson_scripts", json::object()}, {"infotext", nullptr}};
  if (img2img) {
    p.update(json{{"init_images", nullptr}, {"resize_mode", 0}, {"image_cfg_scale", nullptr}, {"mask", nullptr},
                  {"mask_blur_x", 4}, {"mask_blur_y", 4}, {"mask_blur", nullptr}, {"mask_round", true},
                  {"inpainting_fill", 0}, {"inpaint_full_res", true}, {"inpaint_full_res_padding", 0},
                  {"inpainting_mask_invert", 0}, {"initial_noise_multiplier", nullptr}, {"include_init_images", false}});
  } else {
    p.update(json{{"enable_hr", false}, {"firstphase_width", 0}, {"firstphase_height", 0}, {"hr_scale", 2.0},
                  {"hr_upscaler", nullptr}, {"hr_second_pass_steps", 0}, {"hr_resize_x", 0}, {"hr_resize_y", 0},
                  {"hr_checkpoint_name", nullptr}, {"hr_sampler_name", nullptr}, {"hr_scheduler", nullptr},
                  {"hr_prompt", ""}, {"hr_negative_prompt", ""}, {"force_task_id", nullptr}});
  }
  for (const auto& [k, v] : body.items()) p[k] = v;
  if (img2img && !(body.contains("include_init_images") && body["include_init_images"] == true)) {
    p["init_images"] = nullptr;
    p["mask"] = nullptr;
  }
  return p;
}

// A1111's "info" (a JSON string) for a finished generation.
json a1111_info(const GenerationRequest& g, const GenerationOutput& out, int batch_size) {
  const GenerateRequest& r = g.gen;
  json seeds = json::array(), prompts = json::array(), negatives = json::array(), infotexts = json::array();
  for (const auto& im : out.images) {
    seeds.push_back(im.seed);
    prompts.push_back(r.prompt);
    negatives.push_back(r.negative_prompt);
    infotexts.push_back(im.infotext);
  }
  uint64_t seed = out.images.empty() ? uint64_t(std::max<int64_t>(g.seed, 0)) : out.images.front().seed;
  auto [sampler_label, schedule_label] = a1111_sampler_names(r.sampler, r.schedule);
  return json{{"prompt", r.prompt},
              {"all_prompts", prompts},
              {"negative_prompt", r.negative_prompt},
              {"all_negative_prompts", negatives},
              {"seed", seed},
              {"all_seeds", seeds},
              {"subseed", seed},
              {"all_subseeds", seeds},
              {"subseed_strength", 0},
              {"width", r.width},
              {"height", r.height},
              {"sampler_name", sampler_label},
              {"scheduler", schedule_label.empty() ? "Automatic" : schedule_label},
              {"cfg_scale", r.cfg_scale},
              {"steps", r.steps},
              {"batch_size", batch_size},
              {"restore_faces", false},
              {"face_restoration_model", nullptr},
              {"sd_model_name", out.model_name},
              {"sd_model_hash", out.model_hash.empty() ? json(nullptr) : json(out.model_hash)},
              {"sd_vae_name", nullptr},
              {"sd_vae_hash", nullptr},
              {"seed_resize_from_w", -1},
              {"seed_resize_from_h", -1},
              {"denoising_strength", r.init_image ? json(r.strength)
                                                  : r.hires ? json(r.hires->denoising_strength) : json(nullptr)},
              {"extra_generation_params", json::object()},
              {"index_of_first_image", 0},
              {"infotexts", infotexts},
              {"styles", json::array()},
              {"job_timestamp", out.job_timestamp},
              {"clip_skip", r.clip_skip},
              {"is_using_inpainting_conditioning", false},
              {"version", "pigment"},
              {"warnings", out.warnings}};
}

// The parameters of a PNG's infotext as A1111's png-info lists them (parse_generation_parameters).
json infotext_fields(const Infotext& info) {
  json p = json::object();
  p["Prompt"] = info.prompt;
  p["Negative prompt"] = info.negative_prompt;
  for (const auto& [k, v] : info.params) {
    p[k] = v;
    size_t x = v.find('x');
    if (x != std::string::npos && x > 0 && x + 1 < v.size() &&
        v.find_first_not_of("0123456789x") == std::string::npos) {
      p[k + "-1"] = v.substr(0, x);
      p[k + "-2"] = v.substr(x + 1);
    }
  }
  return p;
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

std::pair<long, long> meminfo() {  // total, available (bytes)
  std::ifstream f("/proc/meminfo");
  std::string key;
  long value = 0, total = 0, avail = 0;
  std::string unit;
  while (f >> key >> value >> unit) {
    if (key == "MemTotal:") total = value * 1024;
    if (key == "MemAvailable:") avail = value * 1024;
  }
  return {total, avail};
}

long rss_bytes() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, rss = 0;
  f >> pages >> rss;
  return rss * long(sysconf(_SC_PAGESIZE));
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------

struct HttpServer::Impl {
  Engine& engine;
  httplib::Server svr;
  std::vector<std::string> credentials;  // "user:pass", compared with the decoded header
  explicit Impl(Engine& e) : engine(e) {}

  // An error as the answer: A1111's form, or OpenAI's {"error": {message, type, param, code}} (422 becomes 400).
  static void reply_error(httplib::Response& res, const HttpError& e, bool openai) {
    if (!openai) return reply(res, e.status, e.body);
    std::string msg;
    json param = nullptr;
    const json& d = e.body.contains("detail") ? e.body["detail"] : json();
    if (d.is_string()) {
      msg = d.get<std::string>();
    } else if (d.is_array() && !d.empty()) {
      param = d[0]["loc"].back();
      msg = param.get<std::string>() + ": " + d[0]["msg"].get<std::string>();
    }
    json err = {{"error", {{"message", msg}, {"type", "invalid_request_error"}, {"param", param}, {"code", nullptr}}}};
    reply(res, e.status == 422 ? 400 : e.status, err);
  }

  // Runs `fn`, turning every failure into an answer: HttpError as given, a field error 422, pigment::Error 422,
  // anything else 500.
  template <typename Fn>
  static void guarded(httplib::Response& res, Fn&& fn, bool openai = false) {
    try {
      fn();
    } catch (const HttpError& e) {
      reply_error(res, e, openai);
    } catch (const FieldError& e) {
      reply_error(res, field_error(e.field, e.reason), openai);
    } catch (const Error& e) {
      reply_error(res, http_error(422, e.what()), openai);
    } catch (const std::exception& e) {
      reply_error(res, http_error(500, std::string("internal error: ") + e.what()), openai);
    }
  }

  // Validates, queues, waits; the generation's output. Switches the model for the job when asked.
  GenerationOutput run_generation(const std::string& kind, const GenerationRequest& g, const std::string& model,
                                  bool restore, const std::vector<ControlRequest>& control = {}) {
    validate(g, engine.config().limits);
    GenerationOutput out;
    auto job = engine.submit(kind, [&, model, restore](Job& j) {
      std::string previous = engine.current_model().title;
      if (!model.empty()) engine.switch_model(model);
      try {
        out = engine.generate(g, j, control);
      } catch (...) {
        if (!model.empty() && restore) engine.switch_model(previous);
        throw;
      }
      if (!model.empty() && restore) engine.switch_model(previous);
    });
    job->wait();
    return out;
  }

  void a1111_generate(const httplib::Request& req, httplib::Response& res, bool img2img) {
    guarded(res, [&] {
      json body = parse_body(req);
      std::string model;
      bool restore = true;
      std::vector<ControlRequest> control;
      GenerationRequest g = a1111_request(body, img2img, model, restore, control, engine.config().control_net_dir);
      GenerationOutput out = run_generation(img2img ? "img2img" : "txt2img", g, model, restore, control);
      json images = json::array();
      if (Fields{body}.boolean("send_images", true))
        for (const auto& im : out.images) images.push_back(im.png_base64);
      int batch_size = int(Fields{body}.integer("batch_size", 1));
      reply(res, 200, json{{"images", images}, {"parameters", a1111_parameters(body, img2img)},
                           {"info", a1111_info(g, out, batch_size).dump()}});
    });
  }

  void openai_generate(const httplib::Request& req, httplib::Response& res) {
    guarded(
        res,
        [&] {
          json body = parse_body(req);
          Fields f{body};
          if (!f.has("prompt") || !body["prompt"].is_string() || body["prompt"].get<std::string>().empty())
            throw field_error("prompt", "a non-empty prompt is required");
          GenerationRequest g;
          g.gen.prompt = f.string("prompt", "");
          g.gen.negative_prompt = f.string("negative_prompt", "");
          g.batch_count = f.int_in("n", 1, 1, 10);
          std::string size = f.string("size", "auto");
          if (size == "auto") {
            g.gen.width = g.gen.height = 512;
          } else {
            int w = 0, h = 0;
            char x = 0, extra = 0;
            if (std::sscanf(size.c_str(), "%d%c%d%c", &w, &x, &h, &extra) != 3 || x != 'x')
              throw field_error("size", "expected WIDTHxHEIGHT such as 512x512 or auto, got '" + size + "'");
            g.gen.width = w;
            g.gen.height = h;
          }
          std::string format = f.string("response_format", "b64_json");
          if (format != "b64_json" && format != "url")
            throw field_error("response_format", "must be b64_json or url (a data: URL)");
          // pigment's extensions of the request.
          g.gen.steps = int(f.integer("steps", g.gen.steps));
          g.gen.cfg_scale = f.number("cfg_scale", g.gen.cfg_scale);
          g.gen.sampler = f.string("sampler", g.gen.sampler);
          g.seed = f.integer("seed", -1);
          GenerationOutput out = run_generation("openai", g, "", true);
          json data = json::array();
          for (const auto& im : out.images) {
            json d = {{"revised_prompt", g.gen.prompt}};
            if (format == "url") d["url"] = "data:image/png;base64," + im.png_base64;
            else d["b64_json"] = im.png_base64;
            data.push_back(d);
          }
          reply(res, 200, json{{"created", int64_t(std::time(nullptr))}, {"data", data}});
        },
        /*openai=*/true);
  }

  bool authorized(const httplib::Request& req) {
    if (credentials.empty()) return true;
    std::string h = req.get_header_value("Authorization");
    if (h.rfind("Basic ", 0) != 0) return false;
    std::string decoded;
    try {
      decoded = base64_decode(h.substr(6), "Authorization");
    } catch (const HttpError&) {
      return false;
    }
    bool ok = false;
    for (const auto& c : credentials) ok |= c.size() == decoded.size() && c == decoded;
    return ok;
  }

  void cors(const httplib::Request& req, httplib::Response& res) {
    const auto& origins = engine.config().cors_origins;
    if (origins.empty() || !req.has_header("Origin")) return;
    std::string origin = req.get_header_value("Origin");
    for (const auto& o : origins)
      if (o == "*" || o == origin) {
        res.set_header("Access-Control-Allow-Origin", o == "*" ? "*" : origin);
        res.set_header("Vary", "Origin");
        res.set_header("Access-Control-Allow-Credentials", "true");
        return;
      }
  }

  void routes() {
    const Config& cfg = engine.config();
    for (const auto& [u, p] : cfg.auth) credentials.push_back(u + ":" + p);
    svr.set_payload_max_length(cfg.max_body);
    // Every waiting generation holds a thread; progress, interrupt and the rest need some more.
    const size_t threads = size_t(std::max(cfg.max_queue, 1)) + 8;
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      cors(req, res);
      if (req.method == "OPTIONS" && !engine.config().cors_origins.empty()) {
        res.status = 204;
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!authorized(req)) {
        res.set_header("WWW-Authenticate", "Basic realm=\"pigment\"");
        reply(res, 401, json{{"detail", "Incorrect username or password"}});
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    svr.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      std::string what = res.status == 404   ? "Not Found"
                         : res.status == 413 ? "the request body is larger than the server's --max-body-mb limit"
                         : res.status == 405 ? "Method Not Allowed"
                                             : "HTTP " + std::to_string(res.status);
      reply(res, res.status, json{{"detail", what}});
      return httplib::Server::HandlerResponse::Handled;
    }));
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      reply(res, 500, json{{"detail", "internal error"}});
    });
    if (!cfg.quiet)
      svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        // Method, path and status only: never headers (credentials) or bodies.
        std::fprintf(stderr, "%s %s %d\n", req.method.c_str(), req.path.c_str(), res.status);
      });

    const std::string api = "/sdapi/v1/";
    svr.Post(api + "txt2img", [this](const auto& req, auto& res) { a1111_generate(req, res, false); });
    svr.Post(api + "img2img", [this](const auto& req, auto& res) { a1111_generate(req, res, true); });
    svr.Post("/v1/images/generations", [this](const auto& req, auto& res) { openai_generate(req, res); });
    svr.Get(api + "progress", [this](const httplib::Request& req, auto& res) {
      std::string skip = req.get_param_value("skip_current_image");
      reply(res, 200, engine.progress(skip == "true" || skip == "True" || skip == "1"));
    });
    svr.Post(api + "interrupt", [this](const auto&, auto& res) {
      engine.interrupt();
      reply(res, 200, json::object());
    });
    svr.Post(api + "skip", [this](const auto&, auto& res) {
      engine.skip();
      reply(res, 200, json::object());
    });
    svr.Get(api + "options", [this](const auto&, auto& res) { reply(res, 200, engine.options()); });
    svr.Post(api + "options", [this](const httplib::Request& req, auto& res) {
      guarded(res, [&] {
        engine.set_options(parse_body(req));
        reply(res, 200, json(nullptr));
      });
    });
    svr.Get(api + "sd-models", [this](const auto&, auto& res) {
      json out = json::array();
      for (const auto& m : engine.models())
        out.push_back({{"title", m.title}, {"model_name", m.model_name},
                       {"hash", m.hash.empty() ? json(nullptr) : json(m.hash)}, {"sha256", nullptr},
                       {"filename", m.filename}, {"config", nullptr}});
      reply(res, 200, out);
    });
    svr.Get(api + "sd-vae", [](const auto&, auto& res) { reply(res, 200, json::array()); });
    svr.Get(api + "samplers", [](const auto&, auto& res) {
      json out = json::array();
      for (const auto& l : a1111_sampler_labels())
        out.push_back({{"name", l.label}, {"aliases", json::array({l.choice.scheduler})}, {"options", json::object()}});
      reply(res, 200, out);
    });
    svr.Get(api + "schedulers", [](const auto&, auto& res) {
      json out = json::array();
      for (const auto& l : schedule_labels()) {
        std::string name = resolve_schedule(l);
        out.push_back({{"name", name.empty() ? "automatic" : name}, {"label", l}, {"aliases", nullptr},
                       {"default_rho", -1}, {"need_inner_model", false}});
      }
      reply(res, 200, out);
    });
    svr.Get(api + "upscalers", [](const auto&, auto& res) {
      json out = json::array();
      for (const char* n : {"None", "Lanczos", "Nearest"})
        out.push_back({{"name", n}, {"model_name", nullptr}, {"model_path", nullptr}, {"model_url", nullptr},
                       {"scale", 4}});
      reply(res, 200, out);
    });
    svr.Get(api + "latent-upscale-modes", [](const auto&, auto& res) {
      json out = json::array();
      std::string names = hires_upscaler_names();
      size_t start = 0;
      while (start < names.size()) {
        size_t end = names.find(", ", start);
        std::string n = names.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (n.rfind("Latent", 0) == 0) out.push_back({{"name", n}});
        if (end == std::string::npos) break;
        start = end + 2;
      }
      reply(res, 200, out);
    });
    svr.Get(api + "loras", [this](const auto&, auto& res) {
      json out = json::array();
      for (const auto& p : list_adapter_files(engine.config().folders.lora_dir)) {
        std::string name = fs::path(p).stem().string();
        out.push_back({{"name", name}, {"alias", name}, {"path", p}, {"metadata", json::object()}});
      }
      reply(res, 200, out);
    });
    svr.Get(api + "hypernetworks", [this](const auto&, auto& res) {
      json out = json::array();
      for (const auto& p : list_adapter_files(engine.config().folders.hypernetwork_dir))  // A1111's: .pt files
        if (fs::path(p).extension() == ".pt") out.push_back({{"name", fs::path(p).stem().string()}, {"path", p}});
      reply(res, 200, out);
    });
    svr.Get(api + "embeddings", [this](const auto&, auto& res) {
      json loaded = json::object(), skipped = json::object();
      const std::string& dir = engine.config().folders.embedding_dir;
      if (!dir.empty() && fs::is_directory(dir))
        for (const auto& file : list_embedding_files(dir)) {
          std::string name = fs::path(file).stem().string();
          try {
            Embedding e = load_embedding(file);
            int64_t vectors = e.vectors.defined() ? e.count() : 0;
            int64_t dim = e.vectors.defined() ? e.vectors.dim(1) : 0;
            loaded[name] = {{"step", nullptr}, {"sd_checkpoint", nullptr}, {"sd_checkpoint_name", nullptr},
                            {"shape", dim}, {"vectors", vectors}};
          } catch (const std::exception&) {
            skipped[name] = {{"step", nullptr}, {"sd_checkpoint", nullptr}, {"sd_checkpoint_name", nullptr},
                             {"shape", nullptr}, {"vectors", 0}};
          }
        }
      reply(res, 200, json{{"loaded", loaded}, {"skipped", skipped}});
    });
    for (const char* r : {"refresh-checkpoints", "refresh-loras", "refresh-embeddings", "refresh-vae"})
      svr.Post(api + r, [](const auto&, auto& res) { reply(res, 200, json(nullptr)); });  // folders are read per call
    svr.Get(api + "prompt-styles", [](const auto&, auto& res) { reply(res, 200, json::array()); });
    svr.Get(api + "face-restorers", [](const auto&, auto& res) { reply(res, 200, json::array()); });
    svr.Get(api + "realesrgan-models", [](const auto&, auto& res) { reply(res, 200, json::array()); });
    svr.Get(api + "scripts", [](const auto&, auto& res) {
      reply(res, 200, json{{"txt2img", json::array()}, {"img2img", json::array()}});
    });
    svr.Get(api + "extensions", [](const auto&, auto& res) { reply(res, 200, json::array()); });
    svr.Post(api + "png-info", [this](const httplib::Request& req, auto& res) {
      guarded(res, [&] {
        json body = parse_body(req);
        std::string b64 = Fields{body}.string("image", "");
        if (b64.empty()) throw field_error("image", "Field required", "missing");
        std::string bytes = base64_decode(b64, "image");
        std::map<std::string, std::string> text;
        try {
          text = png_text_chunks(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "image");
        } catch (const Error& e) {
          throw http_error(400, e.what());
        }
        json items = json::object();
        for (const auto& [k, v] : text) items[k] = v;
        auto it = text.find("parameters");
        std::string info = it == text.end() ? "" : it->second;
        json params = info.empty() ? json::object() : infotext_fields(parse_infotext(info));
        reply(res, 200, json{{"info", info}, {"items", items}, {"parameters", params}});
      });
    });
    svr.Get(api + "memory", [](const auto&, auto& res) {
      auto [total, avail] = meminfo();
      struct rusage ru {};
      getrusage(RUSAGE_SELF, &ru);
      reply(res, 200,
            json{{"ram", {{"free", avail}, {"used", rss_bytes()}, {"total", total}, {"peak", long(ru.ru_maxrss) * 1024}}},
                 {"cuda", {{"error", "pigment runs on the CPU; there is no CUDA device"}}}});
    });
    svr.Get(api + "cmd-flags", [this](const auto&, auto& res) {
      const Config& c = engine.config();
      reply(res, 200,
            json{{"ckpt", c.model}, {"ckpt_dir", c.model_dir}, {"lora_dir", c.folders.lora_dir},
                 {"embeddings_dir", c.folders.embedding_dir}, {"hypernetwork_dir", c.folders.hypernetwork_dir},
                 {"controlnet_dir", c.control_net_dir}, {"listen", c.host != "127.0.0.1"}, {"port", c.port},
                 {"api", true}, {"nowebui", c.web_dir.empty()},
                 {"api_auth", c.auth.empty() ? json(nullptr) : json("(set; not shown)")},
                 {"cors_allow_origins", c.cors_origins}, {"max_queue", c.max_queue},
                 {"max_pixels", c.limits.max_pixels}, {"max_steps", c.limits.max_steps},
                 {"max_batch", c.limits.max_batch}, {"timeout", c.timeout_s}, {"max_body", c.max_body},
                 {"lowvram", c.pipeline.low_memory}});
    });
    svr.Get("/controlnet/model_list", [this](const auto&, auto& res) {
      json out = json::array();
      for (const auto& [name, path] : controlnet_models(engine.config().control_net_dir)) out.push_back(name);
      reply(res, 200, json{{"model_list", out}});
    });
    svr.Get("/controlnet/module_list", [](const auto&, auto& res) {
      reply(res, 200, json{{"module_list", control_preprocessor_names()}});
    });
    // The ControlNet extension's preprocessor preview: each input image through the module at its own size (the
    // web page's canny preview). A generation fits the image to its size first, then runs the same Canny.
    svr.Post("/controlnet/detect", [](const httplib::Request& req, auto& res) {
      guarded(res, [&] {
        json body = parse_body(req);
        Fields f{body};
        const std::string module = f.string("controlnet_module", "none");
        if (module != "none" && module != "canny")
          throw field_error("controlnet_module", "'" + module + "' is not supported (none, canny)");
        if (!f.has("controlnet_input_images") || !body["controlnet_input_images"].is_array() ||
            body["controlnet_input_images"].empty())
          throw field_error("controlnet_input_images", "Field required: a list of base64 images", "missing");
        double low = f.number("controlnet_threshold_a", 100), high = f.number("controlnet_threshold_b", 200);
        if (low < 0) low = 100;  // the extension sends -1 for "the module's default"
        if (high < 0) high = 200;
        if (!(low >= 1 && low <= 255 && high >= 1 && high <= 255 && low <= high))
          throw field_error("controlnet_threshold_a", "need 1 <= threshold_a <= threshold_b <= 255");
        json images = json::array();
        const json& inputs = body["controlnet_input_images"];
        for (size_t i = 0; i < inputs.size(); ++i) {
          const std::string field = "controlnet_input_images[" + std::to_string(i) + "]";
          if (!inputs[i].is_string()) throw field_error("controlnet_input_images", field + " must be a base64 string");
          Image img = decode_b64_image(inputs[i].get<std::string>(), field);
          if (img.channels == 4) {  // Canny reads RGB or gray: drop the alpha channel
            Image rgb{img.width, img.height, 3, {}};
            rgb.pixels.reserve(size_t(img.width) * img.height * 3);
            for (size_t p = 0; p < img.pixels.size(); p += 4)
              rgb.pixels.insert(rgb.pixels.end(), img.pixels.begin() + long(p), img.pixels.begin() + long(p) + 3);
            img = std::move(rgb);
          }
          Image out = module == "canny" ? canny_edges(img, low, high) : img;
          auto png = encode_png(out);
          images.push_back(base64_encode(std::string(png.begin(), png.end())));
        }
        reply(res, 200, json{{"images", images}, {"info", "Success"}});
      });
    });
    if (!cfg.web_dir.empty()) svr.set_mount_point("/", cfg.web_dir);
  }
};

HttpServer::HttpServer(Engine& engine) : impl_(std::make_unique<Impl>(engine)) { impl_->routes(); }
HttpServer::~HttpServer() = default;

int HttpServer::run() {
  const Config& cfg = impl_->engine.config();
  int port = cfg.port;
  if (port == 0) {
    port = impl_->svr.bind_to_any_port(cfg.host);
    PIG_CHECK(port > 0, "--listen: cannot bind to ", cfg.host);
  } else {
    PIG_CHECK(impl_->svr.bind_to_port(cfg.host, port), "--listen: cannot bind to ", cfg.host, ":", port,
              " (in use, or not an address of this machine)");
  }
  std::printf("pigment serve: listening on http://%s:%d\n", cfg.host.c_str(), port);
  std::fflush(stdout);
  impl_->svr.listen_after_bind();
  return 0;
}

void HttpServer::stop() { impl_->svr.stop(); }
bool HttpServer::running() const { return impl_->svr.is_running(); }

}  // namespace pigment::cli::serve
