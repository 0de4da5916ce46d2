// pigment png-info FILE: the generation parameters stored in a PNG (A1111's "PNG Info").
#include <cstdio>

#include "command.h"
#include "core/error.h"
#include "io/image.h"
#include "pipelines/infotext.h"

namespace pigment::cli {
namespace {

std::string g_path;
bool g_fields = false;

int run_png_info() {
  auto text = read_png_text(g_path);
  auto it = text.find("parameters");
  PIG_CHECK(it != text.end(), g_path, ": the PNG has no 'parameters' text chunk");
  if (!g_fields) {
    std::printf("%s\n", it->second.c_str());
    return 0;
  }
  Infotext info = parse_infotext(it->second);
  std::printf("Prompt: %s\n", info.prompt.c_str());
  std::printf("Negative prompt: %s\n", info.negative_prompt.c_str());
  for (const auto& [k, v] : info.params) std::printf("%s: %s\n", k.c_str(), v.c_str());
  return 0;
}

RegisterCommand reg("png-info", "print the generation parameters stored in a PNG", [](CLI::App& c) {
  c.add_option("file", g_path, "PNG file")->required();
  c.add_flag("--fields", g_fields, "one parsed field per line");
}, run_png_info);

}  // namespace
}  // namespace pigment::cli
