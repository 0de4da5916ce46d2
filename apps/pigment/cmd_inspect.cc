// pigment inspect FILE_OR_FOLDER: format, tensor count, dtypes, bytes, metadata.
#include <cstdio>
#include <map>

#include "command.h"
#include "io/checkpoint.h"

namespace pigment::cli {
namespace {

std::string g_path;

int run_inspect() {
  Checkpoint c = load_checkpoint(g_path);
  std::map<std::string, std::pair<size_t, size_t>> by_dtype;  // dtype → (count, bytes)
  size_t total = 0;
  for (const auto& [name, t] : c.tensors) {
    auto& d = by_dtype[std::string(dtype_name(t.dtype()))];
    ++d.first;
    d.second += t.nbytes();
    total += t.nbytes();
  }
  std::printf("file: %s\nformat: %s\ntensors: %zu\nbytes: %zu\n", g_path.c_str(), c.format.c_str(), c.tensors.size(),
              total);
  for (const auto& [dt, cb] : by_dtype) std::printf("dtype %s: %zu tensors, %zu bytes\n", dt.c_str(), cb.first, cb.second);
  for (const auto& [k, v] : c.metadata) std::printf("metadata %s: %s\n", k.c_str(), v.c_str());
  return 0;
}

RegisterCommand reg("inspect", "describe a checkpoint file or diffusers folder",
                    [](CLI::App& c) { c.add_option("path", g_path, "checkpoint file or folder")->required(); },
                    run_inspect);

}  // namespace
}  // namespace pigment::cli
