#include "io/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace pigment {

std::string gunzip(std::string_view data, const std::string& what) {
  z_stream z{};
  // 15: the largest window; +32: a gzip or a zlib header, whichever the stream has.
  PIG_CHECK(inflateInit2(&z, 15 + 32) == Z_OK, what, ": cannot start zlib's inflate");
  std::string out;
  out.resize(data.size() * 3 + 4096);
  size_t in_pos = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (z.avail_in == 0 && in_pos < data.size()) {
      size_t n = std::min(data.size() - in_pos, size_t(UINT_MAX));
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + in_pos));
      z.avail_in = uInt(n);
      in_pos += n;
    }
    size_t produced = z.total_out;
    if (produced == out.size()) out.resize(out.size() * 2);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    z.avail_out = uInt(std::min(out.size() - produced, size_t(UINT_MAX)));
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc == Z_BUF_ERROR && z.avail_in == 0 && in_pos == data.size()) break;  // input ended before the stream did
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) break;
  }
  std::string message = z.msg ? z.msg : "";
  size_t total = z.total_out;
  inflateEnd(&z);
  PIG_CHECK(rc == Z_STREAM_END, what, ": not a complete gzip stream (",
            message.empty() ? std::string(rc == Z_BUF_ERROR ? "truncated" : "corrupt") : message, ")");
  out.resize(total);
  return out;
}

std::string gunzip_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  PIG_CHECK(f, path, ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  return gunzip(ss.str(), path);
}

}  // namespace pigment
