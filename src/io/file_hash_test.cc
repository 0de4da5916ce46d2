#include "io/file_hash.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace pigment {
namespace {

TEST(FileHash, Sha256OfKnownText) {
  auto dir = std::filesystem::temp_directory_path() / "pigment_hash_test";
  std::filesystem::create_directories(dir);
  auto path = (dir / "abc.txt").string();
  std::ofstream(path) << "abc";
  EXPECT_EQ(sha256_file(path), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  setenv("HOME", dir.c_str(), 1);
  EXPECT_EQ(model_short_hash(path), "ba7816bf8f");
  EXPECT_EQ(model_short_hash(path), "ba7816bf8f");  // from the cache
  EXPECT_TRUE(std::filesystem::exists(dir / ".cache" / "pigment" / "hashes.json"));
  EXPECT_EQ(model_short_hash(dir.string()), "");
  std::filesystem::remove_all(dir);
}

// A safetensors file written byte by byte: the header length, the JSON header, then `data`.
void write_safetensors(const std::string& path, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(char((n >> (8 * i)) & 0xff));
  out << header << data;
}

TEST(FileHash, AddnetHashSkipsTheSafetensorsHeader) {
  auto dir = std::filesystem::temp_directory_path() / "pigment_addnet_hash_test";
  std::filesystem::create_directories(dir);
  // The data after the header is "abc", whose SHA-256 is the FIPS 180-2 test vector.
  const std::string abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  auto a = (dir / "a.safetensors").string(), b = (dir / "b.safetensors").string();
  write_safetensors(a, R"({"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})", "abc");
  write_safetensors(b, R"({"__metadata__":{"ss_note":"other header"},"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})",
                    "abc");
  EXPECT_EQ(addnet_hash(a), abc);
  EXPECT_EQ(addnet_hash(b), abc);  // metadata does not change it
  EXPECT_NE(sha256_file(a), abc);  // the whole file hashes differently
  EXPECT_EQ(lora_file_hash(a), abc);
  // A .pt (or any non-safetensors) LoRA hashes as a whole file; kohya's sshs_model_hash metadata wins when present.
  auto pt = (dir / "c.pt").string();
  std::filesystem::copy_file(a, pt);
  EXPECT_EQ(lora_file_hash(pt), sha256_file(a));
  auto c = (dir / "d.safetensors").string();
  write_safetensors(c, R"({"__metadata__":{"sshs_model_hash":"0123456789abcdef"},"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}})",
                    "abc");
  EXPECT_EQ(lora_file_hash(c), "0123456789abcdef");
  // A header length past the end of the file is a one-line error.
  auto bad = (dir / "bad.safetensors").string();
  {
    std::ofstream out(bad, std::ios::binary);
    out.write("\xff\xff\x00\x00\x00\x00\x00\x00{}", 10);
  }
  EXPECT_THROW(addnet_hash(bad), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pigment
