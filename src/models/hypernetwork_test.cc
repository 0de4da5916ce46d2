#include "models/hypernetwork.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "ops/autograd.h"

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

// The trained tensors under A1111's state-dict names (Linear, ReLU, LayerNorm, Dropout, Linear, LayerNorm: indices 0,
// 2, 4, 5 hold parameters), and the module's forward recorded on a tape when they are watched.
TEST(Hypernetwork, ParametersAndRecording) {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  fs::path file = fs::path(env ? env : "../shared") / "golden" / "hypernetwork" / "a1111" / "tiny_hypernet.pt";
  if (!fs::exists(file)) GTEST_FAIL() << "no golden data";
  Hypernetwork h = Hypernetwork::load(file.string());
  const auto params = h.parameters();
  EXPECT_EQ(params.size(), 2u * 2u * 8u);  // 2 widths × (k, v) × 4 layers with weight and bias
  EXPECT_EQ(params.at("32.k.linear.0.weight").shape(), (Shape{64, 32}));
  EXPECT_EQ(params.at("32.v.linear.2.bias").shape(), (Shape{64}));
  EXPECT_EQ(params.at("16.k.linear.4.weight").shape(), (Shape{16, 32}));
  EXPECT_EQ(params.at("16.v.linear.5.weight").shape(), (Shape{16}));
  EXPECT_EQ(params.count("32.k.linear.1.weight"), 0u);  // ReLU
  EXPECT_EQ(params.count("32.k.linear.3.weight"), 0u);  // Dropout

  ops::autograd::Tape tape;
  for (const auto& [name, t] : params) tape.watch(t);
  Tensor ctx = Tensor::full({1, 3, 32}, 0.25f), k = ctx, v = ctx;
  {
    ops::autograd::Recording rec(tape);
    h.apply(k, v, 1.f);
  }
  Tensor k_plain = ctx, v_plain = ctx;
  h.apply(k_plain, v_plain, 1.f);
  for (int64_t i = 0; i < k.numel(); ++i) EXPECT_EQ(k.f32()[i], k_plain.f32()[i]);
  tape.backward(k, Tensor::full(k.shape(), 1.f));
  for (const char* n : {"32.k.linear.0.weight", "32.k.linear.2.weight", "32.k.linear.4.bias", "32.k.linear.5.bias"})
    EXPECT_TRUE(tape.gradient(params.at(n)).defined()) << n;
  EXPECT_FALSE(tape.gradient(params.at("32.v.linear.0.weight")).defined());  // v was not back-propagated
  EXPECT_FALSE(tape.gradient(params.at("16.k.linear.0.weight")).defined());  // another width
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
