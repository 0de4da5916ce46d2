#include "models/hypernetwork.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace pigment {
namespace {

namespace fs = std::filesystem;

TEST(Hypernetwork, GoldenFileStructure) {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  fs::path file = fs::path(env ? env : "../shared") / "golden" / "hypernetwork" / "a1111" / "tiny_hypernet.pt";
  if (!fs::exists(file)) GTEST_FAIL() << "no golden data";
  Hypernetwork h = Hypernetwork::load(file.string());
  EXPECT_EQ(h.name(), "tiny_hypernet");
  EXPECT_EQ(h.sizes(), (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(h.layer_structure(), (std::vector<int>{1, 2, 1}));
  // Multiplier 0 leaves the context unchanged; another width passes through.
  Tensor ctx = Tensor::full({1, 3, 32}, 0.25f), k = ctx, v = ctx;
  h.apply(k, v, 0.f);
  for (int64_t i = 0; i < k.numel(); ++i) EXPECT_EQ(k.f32()[i], 0.25f);
  Tensor wide = Tensor::full({1, 3, 64}, 1.f), wk = wide, wv = wide;
  h.apply(wk, wv, 1.f);
  EXPECT_EQ(wk.raw(), wide.raw());
}

TEST(Hypernetwork, BadFilesAreErrors) {
  fs::path dir = fs::temp_directory_path() / "pigment_hn_test";
  fs::create_directories(dir);
  { std::ofstream(dir / "bad.pt") << "garbage"; }
  EXPECT_THROW(Hypernetwork::load((dir / "bad.pt").string()), Error);
  EXPECT_THROW(Hypernetwork::load((dir / "missing.pt").string()), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pigment
