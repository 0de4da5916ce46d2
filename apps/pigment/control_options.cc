#include "control_options.h"

#include <filesystem>

#include "core/error.h"
#include "models/controlnet_loader.h"
#include "imaging/control_preprocess.h"
#include "pipelines/generation_run.h"

namespace pigment::cli {

namespace {

namespace fs = std::filesystem;
std::vector<Image> g_images;  // leading images, then the --control-image files, once checked

// The value of a "one for all or one per unit" flag for unit i.
template <class T>
T per_unit(const std::vector<T>& v, size_t i, T fallback) {
  if (v.empty()) return fallback;
  return v[v.size() == 1 ? 0 : i];
}

std::string preprocessor(size_t i) {
  const ControlOptions& c = control_options();
  return per_unit(c.preprocess, i, std::string(c.canny ? "canny" : "none"));
}

ControlResize resize_mode(size_t i) { return parse_control_resize(per_unit(control_options().resize, i, std::string("crop"))); }

}  // namespace

ControlOptions& control_options() {
  static ControlOptions c;
  return c;
}

void add_control_options(CLI::App& c) {
  ControlOptions& o = control_options();
  c.add_option("--control-net", o.nets, "ControlNet file or diffusers folder (repeatable: several add up)");
  c.add_option("--control-image", o.images, "control image per --control-net: a prepared map, or a photo to "
               "preprocess (--control-preprocess)");
  c.add_option("--control-preprocess", o.preprocess, "preprocessor per --control-net: none (a prepared map) or "
               "canny (default none; one value applies to all)");
  c.add_flag("--canny", o.canny, "canny preprocessor for every control image (stable-diffusion.cpp's flag)");
  c.add_option("--canny-low", o.canny_low, "canny low threshold (A1111's Threshold A)")->capture_default_str();
  c.add_option("--canny-high", o.canny_high, "canny high threshold (A1111's Threshold B)")->capture_default_str();
  c.add_option("--control-resize", o.resize, "fit of the control image to the output size per --control-net: "
               "crop (A1111's Crop and Resize, default), just-resize or fill (Resize and Fill)");
  c.add_option("--control-strength", o.strengths,
               "conditioning scale per --control-net (default 1.0, as diffusers; one value applies to all)");
  c.add_option("--control-start", o.starts, "fraction of the steps where each ControlNet starts (default 0)");
  c.add_option("--control-end", o.ends, "fraction of the steps where each ControlNet stops (default 1)");
  c.add_flag("--control-guess-mode", o.guess_mode, "ControlNet guess mode (conditional half only)");
}

void check_control_options() {
  const ControlOptions& o = control_options();
  const size_t n = o.nets.size(), given = o.leading_images.size() + o.images.size();
  PIG_CHECK(given == n, "--control-image: give one per --control-net (got ", given, " images for ", n,
            " ControlNets)");
  auto one_or_each = [n](size_t count, const char* flag) {
    PIG_CHECK(count <= 1 || count == n, flag, ": give one value, or one per --control-net (got ", count, " for ", n,
              ")");
  };
  one_or_each(o.preprocess.size(), "--control-preprocess");
  one_or_each(o.resize.size(), "--control-resize");
  one_or_each(o.strengths.size(), "--control-strength");
  one_or_each(o.starts.size(), "--control-start");
  one_or_each(o.ends.size(), "--control-end");
  PIG_CHECK(o.canny_low >= 0 && o.canny_low <= o.canny_high, "--canny-low/--canny-high: need 0 <= low <= high (got ",
            o.canny_low, ", ", o.canny_high, ")");
  for (size_t i = 0; i < n; ++i) {
    std::string pre = preprocessor(i);
    PIG_CHECK(pre == "none" || pre == "canny", "--control-preprocess: unknown preprocessor '", pre,
              "' (known: none, canny)");
    resize_mode(i);  // throws for an unknown name
    double start = per_unit(o.starts, i, 0.0), end = per_unit(o.ends, i, 1.0);
    PIG_CHECK(start >= 0 && end <= 1 && start < end, "--control-start/--control-end: need 0 <= start < end <= 1 "
              "(got ", start, ", ", end, " for ControlNet ", i + 1, ")");
  }
  g_images = o.leading_images;
  for (const auto& path : o.images) g_images.push_back(read_image(path));
}

std::vector<ControlUnit> load_control_units(const nlohmann::json& unet_config, int width, int height) {
  const ControlOptions& o = control_options();
  PIG_CHECK(g_images.size() == o.nets.size(), "ControlNet: control images not checked");
  std::vector<ControlUnit> units;
  for (size_t i = 0; i < o.nets.size(); ++i) {
    ControlUnit u;
    u.net = std::make_shared<const ControlNet>(load_controlnet(o.nets[i], unet_config));
    ControlPreprocess pre;
    pre.name = preprocessor(i);
    pre.low = o.canny_low;
    pre.high = o.canny_high;
    u.image = prepare_control_image(g_images[i], width, height, pre, resize_mode(i));
    u.strength = per_unit(o.strengths, i, 1.0);
    u.start = per_unit(o.starts, i, 0.0);
    u.end = per_unit(o.ends, i, 1.0);
    u.guess_mode = o.guess_mode;
    units.push_back(std::move(u));
  }
  return units;
}

std::vector<std::pair<std::string, std::string>> control_infotext_entries() {
  const ControlOptions& o = control_options();
  std::vector<std::pair<std::string, std::string>> entries;
  for (size_t i = 0; i < o.nets.size(); ++i) {
    ControlRecipe c;
    c.module = preprocessor(i);
    c.model = fs::path(o.nets[i]).filename().replace_extension().string();
    c.weight = per_unit(o.strengths, i, 1.0);
    c.threshold_a = o.canny_low;
    c.threshold_b = o.canny_high;
    c.start = per_unit(o.starts, i, 0.0);
    c.end = per_unit(o.ends, i, 1.0);
    c.resize = resize_mode(i);
    c.control_mode = o.guess_mode ? 2 : 0;
    entries.emplace_back("ControlNet " + std::to_string(i), control_infotext(c));  // format_infotext quotes it
  }
  return entries;
}

}  // namespace pigment::cli
