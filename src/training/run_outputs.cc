#include "training/run_outputs.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "pipelines/infotext.h"
#include "pipelines/stable_diffusion.h"
#include "training/method.h"
#include "training/trainer.h"

namespace pigment::training {

namespace fs = std::filesystem;

void write_samples(StableDiffusion& model, const Method& method, const TrainOptions& o, int64_t step, int size,
                   const std::string& dir) {
  if (o.sample_prompts.empty()) return;
  if (!method.apply_to(model)) {
    std::fprintf(stderr, "warning: --method %s cannot write sample images yet; none written\n", o.method.c_str());
    return;
  }
  fs::create_directories(dir);
  for (size_t i = 0; i < o.sample_prompts.size(); ++i) {
    GenerateRequest r;
    r.prompt = o.sample_prompts[i];
    r.width = r.height = size;
    r.steps = 20;
    r.sampler = "Euler a";
    r.seed = o.seed;
    method.prepare_sample(r);
    const GenerateResult g = model.generate(r);
    Infotext info;
    info.prompt = r.prompt;
    info.set("Steps", std::to_string(r.steps));
    info.set("Sampler", r.sampler);
    info.set("CFG scale", format_number(r.cfg_scale));
    info.set("Seed", std::to_string(r.seed));
    info.set("Size", std::to_string(size) + "x" + std::to_string(size));
    info.set("Training step", std::to_string(step));
    char name[64];
    std::snprintf(name, sizeof name, "step-%06lld-%zu.png", (long long)step, i);
    write_png((fs::path(dir) / name).string(), g.image, {{"parameters", format_infotext(info)}});
  }
  method.remove_from(model);
}

namespace {

struct Canvas {
  Image img;
  Canvas(int w, int h) : img{w, h, 3, std::vector<uint8_t>(size_t(w) * h * 3, 255)} {}
  void dot(int x, int y, uint8_t r, uint8_t g, uint8_t b) {
    if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
    uint8_t* p = &img.pixels[(size_t(y) * img.width + x) * 3];
    p[0] = r, p[1] = g, p[2] = b;
  }
  void line(int x0, int y0, int x1, int y1, uint8_t r, uint8_t g, uint8_t b) {  // Bresenham
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    for (int err = dx + dy;;) {
      dot(x0, y0, r, g, b);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  // Digits and ".-e" in a 3x5 pixel font, each pixel drawn as a 2x2 square; (x, y): the top left corner.
  void text(int x, int y, const std::string& s) {
    static const char* glyphs = "0123456789.-e";
    static const uint16_t bits[] = {0x7B6F, 0x2C97, 0x73E7, 0x72CF, 0x5BC9, 0x79CF, 0x79EF, 0x7249, 0x7BEF, 0x7BCF,
                                    0x0002, 0x01C0, 0x2BE3};  // rows of 3 bits, top row in the high bits
    for (char ch : s) {
      const char* g = std::strchr(glyphs, ch);
      if (g && *g) {
        const uint16_t b = bits[g - glyphs];
        for (int r = 0; r < 5; ++r)
          for (int col = 0; col < 3; ++col)
            if (b >> (14 - (r * 3 + col)) & 1)
              for (int k = 0; k < 4; ++k) dot(x + col * 2 + k % 2, y + r * 2 + k / 2, 0, 0, 0);
      }
      x += 8;
    }
  }
};

std::string short_number(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

}  // namespace

Image plot_loss_curve(const std::string& log_csv, int width, int height) {
  std::vector<double> steps, loss, smooth;
  std::ifstream f(log_csv);
  for (std::string l; std::getline(f, l);) {
    double s, a, b;
    if (std::sscanf(l.c_str(), "%lf,%lf,%lf", &s, &a, &b) == 3 && std::isfinite(a) && std::isfinite(b))
      steps.push_back(s), loss.push_back(a), smooth.push_back(b);
  }
  Canvas c(width, height);
  const int left = 50, right = width - 20, top = 20, bottom = height - 40;
  // Axes with ten ticks each.
  c.line(left, top, left, bottom, 0, 0, 0);
  c.line(left, bottom, right, bottom, 0, 0, 0);
  for (int i = 0; i <= 10; ++i) {
    const int x = left + (right - left) * i / 10, y = bottom - (bottom - top) * i / 10;
    c.line(x, bottom, x, bottom + 5, 0, 0, 0);
    c.line(left - 5, y, left, y, 0, 0, 0);
  }
  c.text(left - 14, bottom + 10, "0");
  if (steps.empty()) return c.img;
  const double max_step = std::max(1.0, steps.back());
  double max_loss = 0;
  for (double v : loss) max_loss = std::max(max_loss, v);
  if (max_loss <= 0) max_loss = 1;
  // The axes' ends: the last step under the x axis, the largest loss beside the y axis.
  const std::string xs = short_number(max_step), ys = short_number(max_loss);
  c.text(right - 8 * int(xs.size()) + 2, bottom + 10, xs);
  c.text(2, top - 4, ys);
  auto px = [&](double s) { return left + int(std::lround((right - left) * s / max_step)); };
  auto py = [&](double v) { return bottom - int(std::lround((bottom - top) * std::clamp(v / max_loss, 0.0, 1.0))); };
  for (const auto* series : {&loss, &smooth}) {
    const bool raw = series == &loss;
    for (size_t i = 0; i < steps.size(); ++i) {
      const int x = px(steps[i]), y = py((*series)[i]);
      if (i == 0)
        c.dot(x, y, raw ? 170 : 20, raw ? 170 : 60, raw ? 170 : 220);
      else
        c.line(px(steps[i - 1]), py((*series)[i - 1]), x, y, raw ? 170 : 20, raw ? 170 : 60, raw ? 170 : 220);
    }
  }
  return c.img;
}

void write_loss_plot(const std::string& log_csv, const std::string& png) {
  write_png(png, plot_loss_curve(log_csv), {{"Title", "loss (grey) and smoothed loss (blue) over steps"}});
}

}  // namespace pigment::training
