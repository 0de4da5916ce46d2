#include "io/text_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace pigment {

std::string read_text_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  namespace fs = std::filesystem;
  std::error_code ec;
  PIG_CHECK(!fs::is_directory(path, ec), what, ": ", path, " is a folder, not a file");
  const auto size = fs::file_size(path, ec);
  PIG_CHECK(!ec, what, ": cannot read ", path, ": ", ec.message());
  PIG_CHECK(size <= max_bytes, what, ": ", path, " has ", size, " bytes, more than the ", max_bytes, " allowed");
  std::ifstream f(path, std::ios::binary);
  PIG_CHECK(f, what, ": cannot open ", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  PIG_CHECK(!f.bad(), what, ": error reading ", path);
  return ss.str();
}

}  // namespace pigment
