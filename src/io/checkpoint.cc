#include "io/checkpoint.h"

#include <filesystem>

#include "io/safetensors.h"

namespace pigment {

Checkpoint load_checkpoint(const std::string& path) {
  namespace fs = std::filesystem;
  PIG_CHECK(fs::exists(path), path, ": no such file or directory");
  Checkpoint c;
  c.path = path;
  auto st = SafeTensors::open(path);
  c.format = "safetensors";
  c.metadata = st.metadata();
  for (const auto& e : st.entries()) c.tensors[e.name] = st.get(e.name);
  return c;
}

}  // namespace pigment
