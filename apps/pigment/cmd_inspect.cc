// pigment inspect FILE_OR_FOLDER: format, tensor count, dtypes, bytes, metadata and (for diffusers folders) the
// components' configs. Any problem with the input is one "error: <file>: <what>" line and exit status 1.
#include <cstdio>
#include <map>
#include <string>

#include "command.h"
#include "io/checkpoint.h"
#include "models/model_family.h"

namespace pigment::cli {
namespace {

std::string g_path;

// Metadata values can be long or multi-line (training parameters as JSON); keep each on one line.
std::string one_line(const std::string& s, size_t max_len = 300) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  }
  return out;
}

Checkpoint load_or_explain(const std::string& path) {
  try {
    return load_checkpoint(path);
  } catch (const std::exception& e) {
    // Always one line, always naming the input (errors from deep inside a folder name the file they are about).
    std::string m = one_line(e.what(), 2000);
    if (m.rfind(path, 0) != 0) m = path + ": " + m;
    throw Error(m);
  }
}

int run_inspect() {
  Checkpoint c = load_or_explain(g_path);
  std::map<std::string, std::pair<size_t, size_t>> by_dtype;  // dtype → (count, bytes)
  size_t total = 0;
  for (const auto& [name, t] : c.tensors) {
    auto& d = by_dtype[std::string(dtype_name(t.dtype()))];
    ++d.first;
    d.second += t.nbytes();
    total += t.nbytes();
  }
  std::printf("file: %s\nformat: %s\n", g_path.c_str(), c.format.c_str());
  std::printf("%s", describe_checkpoint_family(c.tensors, g_path, c.metadata).c_str());
  std::printf("tensors: %zu\nbytes: %zu\n", c.tensors.size(), total);
  for (const auto& [dt, cb] : by_dtype) std::printf("dtype %s: %zu tensors, %zu bytes\n", dt.c_str(), cb.first, cb.second);
  for (const auto& [k, v] : c.metadata) std::printf("metadata %s: %s\n", one_line(k, 100).c_str(), one_line(v).c_str());
  for (const auto& [component, text] : c.configs)
    std::printf("config %s: %zu bytes\n", component.empty() ? "." : component.c_str(), text.size());
  return 0;
}

RegisterCommand reg("inspect", "describe a checkpoint file or diffusers folder",
                    [](CLI::App& c) { c.add_option("path", g_path, "checkpoint file or folder")->required(); },
                    run_inspect);

}  // namespace
}  // namespace pigment::cli
