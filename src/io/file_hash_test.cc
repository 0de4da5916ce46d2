#include "io/file_hash.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

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

}  // namespace
}  // namespace pigment
