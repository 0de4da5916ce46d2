#include "io/file_hash.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"

namespace pigment {

std::string sha256_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  PIG_CHECK(f, path, ": cannot open to hash");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<unsigned char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) EVP_DigestUpdate(ctx.get(), buf.data(), n);
  bool err = std::ferror(f);
  std::fclose(f);
  PIG_CHECK(!err, path, ": read error while hashing");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::string model_short_hash(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) return "";
  struct stat st {};
  PIG_CHECK(::stat(path.c_str(), &st) == 0, path, ": cannot stat");
  std::string key = fs::absolute(path).lexically_normal().string();
  std::string stamp = std::to_string(st.st_size) + ":" + std::to_string(st.st_mtime);
  const char* home = std::getenv("HOME");
  fs::path cache = fs::path(home ? home : "/tmp") / ".cache" / "pigment" / "hashes.json";
  nlohmann::json db = nlohmann::json::object();
  {
    std::ifstream in(cache);
    if (in) {
      try {
        db = nlohmann::json::parse(in);
      } catch (const std::exception&) {
        db = nlohmann::json::object();  // a damaged cache is rebuilt
      }
    }
  }
  if (db.is_object() && db.contains(key) && db[key].value("stamp", "") == stamp) return db[key].value("sha256", "").substr(0, 10);
  std::string full = sha256_file(path);
  if (!db.is_object()) db = nlohmann::json::object();
  db[key] = {{"stamp", stamp}, {"sha256", full}};
  std::error_code ec;
  fs::create_directories(cache.parent_path(), ec);
  std::string tmp = cache.string() + ".tmp";
  {
    std::ofstream out(tmp);
    if (out) out << db.dump(1);
  }
  fs::rename(tmp, cache, ec);  // a cache that cannot be written only costs time next run
  return full.substr(0, 10);
}

}  // namespace pigment
