#include "default_model.h"

#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace pigment::cli {

namespace fs = std::filesystem;

std::vector<std::string> default_model_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("PIGMENT_MODEL"); env && *env) out.push_back(env);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path bin = exe.parent_path();
    out.push_back((bin.parent_path() / "share" / "pigment" / "models" / kDefaultModelName).string());
    // build/bin/pigment in a checkout: the repository's models/ folder.
    out.push_back((bin.parent_path().parent_path() / "models" / kDefaultModelName).string());
  }
  return out;
}

std::string default_model_path() {
  if (const char* env = std::getenv("PIGMENT_MODEL"); env && *env) {
    PIG_CHECK(fs::is_regular_file(env), "no -m MODEL given, and PIGMENT_MODEL=", env, " is not a file");
    return env;
  }
  const auto candidates = default_model_candidates();
  std::string tried;
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c)) return c;
    tried += (tried.empty() ? "" : ", ") + c;
  }
  fail("no -m MODEL given, and pigment's own model is not there (looked for ", tried,
       "); give a model with -m, or set PIGMENT_MODEL");
}

}  // namespace pigment::cli
