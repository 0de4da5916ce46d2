// pigment grid OUT.png IMAGE... [--columns N] [--cell PX] [--gap PX]: the pictures side by side on one sheet.
#include <cstdio>

#include "command.h"
#include "core/error.h"
#include "imaging/grid.h"
#include "io/image.h"

namespace pigment::cli {
namespace {

struct Args {
  std::string out;
  std::vector<std::string> images;
  GridOptions o;
} g;

int run_grid() {
  std::vector<Image> pics;
  for (const auto& p : g.images) pics.push_back(read_image(p));
  Image sheet = make_grid(pics, g.o);
  write_png(g.out, sheet);
  std::printf("wrote %s: %d pictures, %dx%d\n", g.out.c_str(), int(pics.size()), sheet.width, sheet.height);
  return 0;
}

RegisterCommand reg(
    "grid", "put pictures side by side on one sheet (PNG)",
    [](CLI::App& c) {
      c.add_option("out", g.out, "the sheet (.png)")->required();
      c.add_option("images", g.images, "the pictures, in order")->required();
      c.add_option("--columns", g.o.columns, "pictures per row (default: about square)");
      c.add_option("--cell", g.o.cell, "scale every picture to this square size (Lanczos; default: the first's)");
      c.add_option("--gap", g.o.gap, "white pixels between pictures")->capture_default_str();
    },
    run_grid);

}  // namespace
}  // namespace pigment::cli
