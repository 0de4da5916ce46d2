// The pigment command line: thin, over the library.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <map>

#include "io/checkpoint.h"

namespace {

int cmd_inspect(const std::string& path) {
  pigment::Checkpoint c = pigment::load_checkpoint(path);
  std::map<std::string, std::pair<size_t, size_t>> by_dtype;  // dtype → (count, bytes)
  size_t total = 0;
  for (const auto& [name, t] : c.tensors) {
    auto& d = by_dtype[std::string(pigment::dtype_name(t.dtype()))];
    ++d.first;
    d.second += t.nbytes();
    total += t.nbytes();
  }
  std::printf("file: %s\nformat: %s\ntensors: %zu\nbytes: %zu\n", path.c_str(), c.format.c_str(), c.tensors.size(),
              total);
  for (const auto& [dt, cb] : by_dtype) std::printf("dtype %s: %zu tensors, %zu bytes\n", dt.c_str(), cb.first, cb.second);
  for (const auto& [k, v] : c.metadata) std::printf("metadata %s: %s\n", k.c_str(), v.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pigment: Stable Diffusion in C++"};
  app.require_subcommand(1);
  std::string inspect_path;
  auto* inspect = app.add_subcommand("inspect", "describe a checkpoint file or diffusers folder");
  inspect->add_option("path", inspect_path, "checkpoint file or folder")->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*inspect) return cmd_inspect(inspect_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
