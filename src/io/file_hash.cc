#include "io/file_hash.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"

namespace pigment {

std::string sha256_file(const std::string& path, uint64_t offset) {
  FILE* f = std::fopen(path.c_str(), "rb");
  PIG_CHECK(f, path, ": cannot open to hash");
  if (offset > 0 && ::fseeko(f, off_t(offset), SEEK_SET) != 0) {
    std::fclose(f);
    fail(path, ": cannot seek to byte ", offset, " to hash");
  }
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

std::string addnet_hash(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  PIG_CHECK(f, path, ": cannot open to hash");
  unsigned char len[8];
  size_t got = std::fread(len, 1, 8, f);
  std::fclose(f);
  PIG_CHECK(got == 8, path, ": too short for a safetensors header");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  std::error_code ec;
  uint64_t size = std::filesystem::file_size(path, ec);
  PIG_CHECK(!ec && n <= size - 8, path, ": safetensors header length ", n, " exceeds the file size ", size);
  return sha256_file(path, 8 + n);
}

std::string lora_file_hash(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (char& c : ext) c = char(std::tolower((unsigned char)c));
  if (ext != ".safetensors") return sha256_file(path);
  auto meta = SafeTensors::open(path).metadata();
  auto it = meta.find("sshs_model_hash");
  if (it != meta.end() && !it->second.empty()) return it->second;
  return addnet_hash(path);
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
