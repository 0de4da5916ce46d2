// pigment qr "TEXT" -m MODEL --control-net QR_CONTROLNET -p "..." [every generate flag]: renders TEXT as a QR code
// (libqrencode) at the output size, generates with it as the first ControlNet's control image, then reads each
// output back with libzbar and reports "scans: yes (TEXT)" or "scans: no".
// pigment qr --check IMAGE [TEXT]: only reads IMAGE (exit 0 when a code scans, and matches TEXT if given; 2 when not).
// pigment qr "TEXT" --code-only -o FILE: only writes the rendered code.
#include <cstdio>

#include "command.h"
#include "control_options.h"
#include "core/error.h"
#include "generate.h"
#include "pipelines/qr_code.h"

namespace pigment::cli {
namespace {

struct QrArgs {
  std::string text, check, level = "H", output = "output.png";
  int quiet_zone = 4, width = 512, height = 512;
  bool code_only = false;
  CLI::App* app = nullptr;
} q;

std::string quoted_for_report(const std::string& s) {
  std::string out;
  for (char c : s) out += (c == '\n' || c == '\r') ? ' ' : c;
  return out;
}

// "scans: yes (TEXT)" when a code reads as `expected` (or anything, when expected is empty); else "scans: no".
bool report(const std::string& label, const Image& img, const std::string& expected) {
  std::vector<std::string> found = scan_qr(img);
  for (const auto& f : found)
    if (expected.empty() || f == expected) {
      std::printf("%sscans: yes (%s)\n", label.c_str(), quoted_for_report(f).c_str());
      return true;
    }
  if (found.empty()) std::printf("%sscans: no\n", label.c_str());
  else std::printf("%sscans: no (reads \"%s\", not the text)\n", label.c_str(), quoted_for_report(found[0]).c_str());
  return false;
}

int run_qr() {
  if (!q.check.empty()) {
    Image img = read_image(q.check);
    return report("", img, q.text) ? 0 : 2;
  }
  PIG_CHECK(q.app->count("text") > 0, "qr: give the TEXT to encode (or --check IMAGE)");
  QrLevel level = parse_qr_level(q.level);
  QrCode code = encode_qr(q.text, level);  // empty or too long: a one-line error before anything is loaded
  PIG_CHECK(q.quiet_zone >= 0 && q.quiet_zone <= 100, "--qr-quiet-zone must be between 0 and 100 modules");
  if (q.code_only) {  // the same -o/-W/-H as a generation
    auto given = [](const char* flag) { return q.app->get_option(flag)->count() > 0; };
    if (given("--output")) q.output = q.app->get_option("--output")->as<std::string>();
    if (given("--width")) q.width = q.app->get_option("--width")->as<int>();
    if (given("--height")) q.height = q.app->get_option("--height")->as<int>();
    PIG_CHECK(q.width >= 8 && q.height >= 8 && q.width <= 8192 && q.height <= 8192, "qr: invalid size ", q.width,
              "x", q.height);
    Image img = render_qr(code, q.width, q.height, q.quiet_zone);
    write_png(q.output, img);
    std::printf("wrote %s: QR version %d, %dx%d modules, level %s\n", q.output.c_str(), code.version, code.size,
                code.size, q.level.c_str());
    return 0;
  }
  PIG_CHECK(!control_options().nets.empty(), "qr: give the QR-code ControlNet with --control-net");
  GenerateHooks hooks;
  hooks.leading_control_images = [&](int w, int h) { return std::vector<Image>{render_qr(code, w, h, q.quiet_zone)}; };
  std::vector<std::string> written;
  hooks.written = [&](const std::string& path) { written.push_back(path); };
  int rc = run_generate(*q.app, hooks);
  for (const auto& path : written) report(path + ": ", read_image(path), q.text);
  return rc;
}

RegisterCommand reg(
    "qr", "generate an image that is a QR code (a QR ControlNet), and check that it scans",
    [](CLI::App& c) {
      q.app = &c;
      c.add_option("text", q.text, "the text to encode (a URL, ...)");
      c.add_option("--check", q.check, "only scan IMAGE: exit 0 when a QR code reads (as TEXT, if given), else 2");
      c.add_option("--qr-level", q.level, "error correction: L, M, Q or H (more survives stylisation)")
          ->capture_default_str();
      c.add_option("--qr-quiet-zone", q.quiet_zone, "white border in modules")->capture_default_str();
      c.add_flag("--code-only", q.code_only, "only write the rendered code to -o at -W x -H (no model needed)");
      add_generate_options(c, /*model_required=*/false);
    },
    run_qr);

}  // namespace
}  // namespace pigment::cli
