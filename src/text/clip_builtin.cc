#include "text/clip_builtin.h"

#include <cstddef>
#include <string>

#include "io/gzip.h"

namespace pigment {
namespace embedded {
// Generated from data/clip_merges.txt.gz by cmake/embed_file.cmake.
extern const unsigned char clip_merges_gz[];
extern const std::size_t clip_merges_gz_size;
}  // namespace embedded

std::string_view builtin_clip_merges() {
  static const std::string text = gunzip(
      std::string_view(reinterpret_cast<const char*>(embedded::clip_merges_gz), embedded::clip_merges_gz_size),
      "the built-in CLIP merges table");
  return text;
}

}  // namespace pigment
