#include "models/hypernetwork.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "io/pickle_test_writer.h"
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
  EXPECT_EQ(h.layer_structure(), (std::vector<double>{1, 2, 1}));
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

// A1111 allows fractional multipliers: layer_structure 1, 1.5, 1 on width 5 gives Linear(5, int(7.5) = 7), ReLU,
// Linear(7, 5). The file is built with the test pickle writer (torch.save layout); the result is checked against a
// hand computation of x + m * (W2 relu(W1 x + b1) + b2).
TEST(Hypernetwork, FractionalLayerStructure) {
  using testing::PickleWriter;
  constexpr int64_t dim = 5, hidden = 7;
  EXPECT_EQ(layer_width(dim, 1.5), hidden);
  EXPECT_EQ(layer_width(768, 1.1), 844);  // 844.8000000000001 in float64, truncated as Python's int()
  // Weights of the key (kv = 0) and value (kv = 1) modules: small distinct values.
  auto values = [](int64_t n, float base) {
    std::vector<float> v(static_cast<size_t>(n), 0.f);
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = base + 0.01f * float((i * 7) % 13) - 0.06f;
    return v;
  };
  struct Params {
    std::vector<float> w1, b1, w2, b2;
  };
  Params p[2];
  testing::Records storages;
  PickleWriter w;
  w.proto().empty_dict().mark();
  w.integer(dim).empty_list().mark();
  int key = 0;
  for (int kv = 0; kv < 2; ++kv) {
    p[kv] = {values(hidden * dim, 0.1f * float(kv + 1)), values(hidden, -0.05f), values(dim * hidden, 0.02f * float(kv)),
             values(dim, 0.03f)};
    w.ordered_dict().mark();
    auto add = [&](const std::string& name, const std::vector<float>& data, const std::vector<int64_t>& shape) {
      const std::string k = std::to_string(key++);
      std::vector<int64_t> stride(shape.size(), 1);
      if (shape.size() == 2) stride[0] = shape[1];
      w.str(name).tensor("FloatStorage", k, int64_t(data.size()), 0, shape, stride);
      storages.emplace_back(k, testing::raw_bytes(data));
    };
    add("linear.0.weight", p[kv].w1, {hidden, dim});
    add("linear.0.bias", p[kv].b1, {hidden});
    add("linear.2.weight", p[kv].w2, {dim, hidden});
    add("linear.2.bias", p[kv].b2, {dim});
    w.setitems();
  }
  w.appends();
  w.str("layer_structure").empty_list().mark().integer(1).real(1.5).integer(1).appends();
  w.str("activation_func").str("relu").str("is_layer_norm").boolean(false);
  w.str("use_dropout").boolean(false).str("activate_output").boolean(false).str("name").str("frac");
  w.setitems().stop();
  const fs::path file = fs::temp_directory_path() / ("pigment-hypernet-frac-" + std::to_string(::getpid()) + ".pt");
  std::ofstream(file, std::ios::binary) << testing::make_torch_zip(w.bytes(), storages);

  Hypernetwork h = Hypernetwork::load(file.string());
  fs::remove(file);
  EXPECT_EQ(h.layer_structure(), (std::vector<double>{1, 1.5, 1}));
  EXPECT_EQ(h.sizes(), (std::vector<int64_t>{dim}));
  EXPECT_EQ(h.parameters().at("5.k.linear.0.weight").shape(), (Shape{hidden, dim}));
  EXPECT_EQ(h.parameters().at("5.v.linear.2.weight").shape(), (Shape{dim, hidden}));

  const std::vector<float> x = values(2 * dim, 0.4f);  // [1, 2, 5]
  const float m = 0.8f;
  Tensor k = Tensor::from_vector({1, 2, dim}, x), v = k.clone();
  h.apply(k, v, m);
  for (int kv = 0; kv < 2; ++kv) {
    const Tensor& got = kv ? v : k;
    for (int64_t t = 0; t < 2; ++t) {
      double hid[hidden];
      for (int64_t o = 0; o < hidden; ++o) {
        double s = p[kv].b1[size_t(o)];
        for (int64_t i = 0; i < dim; ++i) s += double(p[kv].w1[size_t(o * dim + i)]) * x[size_t(t * dim + i)];
        hid[o] = s > 0 ? s : 0;
      }
      for (int64_t o = 0; o < dim; ++o) {
        double s = p[kv].b2[size_t(o)];
        for (int64_t i = 0; i < hidden; ++i) s += double(p[kv].w2[size_t(o * hidden + i)]) * hid[i];
        const double want = x[size_t(t * dim + o)] + m * s;
        EXPECT_NEAR(got.f32()[t * dim + o], want, 1e-6) << (kv ? "v" : "k") << " token " << t << " channel " << o;
      }
    }
  }
}

}  // namespace
}  // namespace pigment
