// Weight preparation: the one-pass converter into oneDNN's blocked layouts against oneDNN's own reorder (bit for
// bit), the per-call (streamed) path against the kept one, the budget policy, and file pages given back.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "core/cpu_isa.h"
#include "core/file_pages.h"
#include "io/safetensors.h"
#include "ops/onednn.h"
#include "ops/ops_test_util.h"

namespace pigment::ops {
namespace {
using dnnl::memory;
using tag = memory::format_tag;
using testing::randn;

// What oneDNN's reorder makes of w (converted to f32 first) in layout `want`.
std::vector<char> onednn_reorder(const Tensor& w, const memory::desc& plain, const memory::desc& want) {
  Tensor f = w.as_f32();
  memory in(plain, onednn::engine(), const_cast<void*>(f.raw()));
  std::vector<char> out(want.get_size());
  memory o(want, onednn::engine(), out.data());
  dnnl::reorder(in, o).execute(onednn::stream(), in, o);
  onednn::stream().wait();
  return out;
}

void expect_same_layout(const Tensor& w, const memory::desc& plain, const memory::desc& want) {
  std::vector<char> expect = onednn_reorder(w, plain, want);
  std::vector<char> got(want.get_size(), char(0x5a));
  ASSERT_TRUE(onednn::convert_to_blocked(w, plain, want, got.data())) << shape_str(w.shape());
  EXPECT_EQ(0, std::memcmp(expect.data(), got.data(), got.size())) << shape_str(w.shape());
}

TEST(WeightPrep, ConvertsToMatmulLayoutsLikeOneDnn) {
  uint32_t seed = 1;
  for (auto [K, N] : std::vector<std::pair<int64_t, int64_t>>{{320, 320}, {768, 320}, {1280, 5120}, {5120, 1280},
                                                               {13, 7}, {31, 100}, {64, 2560}}) {
    const memory::desc src({512, K}, memory::data_type::f32, tag::ab), dst({512, N}, memory::data_type::f32, tag::ab);
    const memory::desc w_any({K, N}, memory::data_type::f32, tag::any);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, w_any, dst), onednn::engine());
    const memory::desc plain({K, N}, memory::data_type::f32, tag::ba);
    for (DType dt : {DType::F32, DType::F16, DType::BF16})
      expect_same_layout(randn({N, K}, seed++).to(dt), plain, pd.weights_desc());
  }
}

TEST(WeightPrep, ConvertsToConvLayoutsLikeOneDnn) {
  struct C {
    int64_t in, out, k, hw;
  };
  uint32_t seed = 100;
  for (C c : {C{320, 320, 3, 16}, C{4, 320, 3, 16}, C{320, 4, 3, 16}, C{640, 320, 1, 8}, C{2560, 1280, 3, 8},
              C{3, 5, 3, 9}}) {
    const auto f32 = memory::data_type::f32;
    const memory::desc x({2, c.in, c.hw, c.hw}, f32, tag::any), w({c.out, c.in, c.k, c.k}, f32, tag::any),
        y({2, c.out, c.hw, c.hw}, f32, tag::any);
    const int64_t p = (c.k - 1) / 2;
    dnnl::convolution_forward::primitive_desc pd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, x,
                                        w, y, {1, 1}, {p, p}, {p, p}),
        onednn::engine());
    const memory::desc plain({c.out, c.in, c.k, c.k}, f32, tag::oihw);
    for (DType dt : {DType::F32, DType::F16})
      expect_same_layout(randn({c.out, c.in, c.k, c.k}, seed++).to(dt), plain, pd.weights_desc());
  }
}

// The Winograd transform: the same weights as oneDNN's reorder up to rounding (the sums are ordered differently),
// and convolutions with streamed Winograd weights match the reference.
TEST(WeightPrep, ConvertsToWinogradLayoutsLikeOneDnn) {
  const auto f32 = memory::data_type::f32;
  struct C {
    int64_t in, out, hw, n;
  };
  uint32_t seed = 200;
  int converted = 0, winograd_kernels = 0;
  for (C c : {C{64, 64, 32, 1}, C{320, 320, 64, 1}, C{48, 80, 16, 1}, C{20, 36, 32, 1}, C{256, 256, 8, 2},
              C{1280, 1280, 8, 1}}) {
    const memory::desc x({c.n, c.in, c.hw, c.hw}, f32, tag::any), w({c.out, c.in, 3, 3}, f32, tag::any),
        y({c.n, c.out, c.hw, c.hw}, f32, tag::any);
    std::unique_ptr<dnnl::convolution_forward::primitive_desc> pd;
    try {
      pd = std::make_unique<dnnl::convolution_forward::primitive_desc>(
          dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd,
                                          x, w, y, {1, 1}, {1, 1}, {1, 1}),
          onednn::engine());
    } catch (const dnnl::error&) {
      continue;  // no Winograd kernel for this shape
    }
    ++winograd_kernels;
    const memory::desc plain({c.out, c.in, 3, 3}, f32, tag::oihw), want = pd->weights_desc();
    Tensor wt = randn({c.out, c.in, 3, 3}, seed++).to(DType::F16);
    std::vector<char> expect = onednn_reorder(wt, plain, want);
    std::vector<char> got(want.get_size(), 0);
    if (!onednn::convert_to_blocked(wt, plain, want, got.data())) continue;  // a layout left to oneDNN
    ++converted;
    const float* e = reinterpret_cast<const float*>(expect.data());
    const float* g = reinterpret_cast<const float*>(got.data());
    double worst = 0, scale = 0;
    for (size_t i = 0; i < want.get_size() / 4; ++i) {
      worst = std::max(worst, double(std::fabs(e[i] - g[i])));
      scale = std::max(scale, double(std::fabs(e[i])));
    }
    EXPECT_LE(worst, 1e-6 * scale) << c.in << "->" << c.out << " @" << c.hw;
  }
  // oneDNN 2.6's Winograd kernels are AVX-512 ones: without AVX-512 (or capped below it) there is nothing to convert.
  EXPECT_EQ(winograd_kernels > 0, cpu_has(Isa::Avx512));
  EXPECT_EQ(converted > 0, winograd_kernels > 0);
}

// The AVX-512 kernels of convert_to_blocked (tile transposes, the Winograd transform in vector lanes) against its
// portable loops, bit for bit: matmul, direct and Winograd convolution layouts, odd sizes (tails) included.
TEST(WeightPrep, SimdConversionGivesThePortableBits) {
  const auto f32 = memory::data_type::f32;
  std::vector<std::pair<memory::desc, memory::desc>> layouts;  // (plain, wanted)
  for (auto [K, N] : std::vector<std::pair<int64_t, int64_t>>{{640, 640}, {768, 320}, {13, 7}, {31, 100}, {40, 72}}) {
    const memory::desc src({154, K}, f32, tag::ab), dst({154, N}, f32, tag::ab), w_any({K, N}, f32, tag::any);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, w_any, dst), onednn::engine());
    layouts.push_back({memory::desc({K, N}, f32, tag::ba), pd.weights_desc()});
  }
  struct C {
    int64_t in, out, k, hw;
    bool wino;
  };
  for (C c : {C{320, 320, 3, 16, false}, C{20, 36, 3, 9, false}, C{640, 320, 1, 8, false}, C{640, 320, 3, 8, false},
              C{320, 320, 3, 64, true}, C{64, 64, 3, 32, true}, C{20, 36, 3, 32, true}, C{48, 80, 3, 16, true},
              C{256, 256, 3, 8, true}}) {
    const memory::desc x({1, c.in, c.hw, c.hw}, f32, tag::any), w({c.out, c.in, c.k, c.k}, f32, tag::any),
        y({1, c.out, c.hw, c.hw}, f32, tag::any);
    const int64_t p = (c.k - 1) / 2;
    try {
      dnnl::convolution_forward::primitive_desc pd(
          dnnl::convolution_forward::desc(
              dnnl::prop_kind::forward_inference,
              c.wino ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct, x, w, y, {1, 1},
              {p, p}, {p, p}),
          onednn::engine());
      layouts.push_back({memory::desc({c.out, c.in, c.k, c.k}, f32, tag::oihw), pd.weights_desc()});
    } catch (const dnnl::error&) {
      // no kernel for this shape
    }
  }
  // Without AVX-512 (or capped below it) both settings run the portable loops: the kernels must say so.
  EXPECT_EQ(onednn::set_simd_weight_prep(true), cpu_has(Isa::Avx512));
  uint32_t seed = 400;
  int wino = 0;
  for (const auto& [plain, want] : layouts) {
    const memory::dims dims = plain.dims();
    Shape shape(dims.begin(), dims.end());
    if (shape.size() == 2) std::swap(shape[0], shape[1]);  // the linear weight is [N, K]
    wino += want.data.format_kind == dnnl_format_kind_wino;
    for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
      const Tensor wt = randn(shape, seed++).to(dt);
      std::vector<char> simd(want.get_size(), char(0x5a)), portable(want.get_size(), char(0x5a));
      onednn::set_simd_weight_prep(true);
      const bool ok = onednn::convert_to_blocked(wt, plain, want, simd.data());
      onednn::set_simd_weight_prep(false);
      const bool ok_portable = onednn::convert_to_blocked(wt, plain, want, portable.data());
      onednn::set_simd_weight_prep(true);
      ASSERT_EQ(ok, ok_portable) << shape_str(shape);
      if (ok) {
        EXPECT_EQ(0, std::memcmp(simd.data(), portable.data(), simd.size())) << shape_str(shape);
      }
    }
  }
  EXPECT_EQ(wino > 0, cpu_has(Isa::Avx512));  // Winograd layouts covered wherever oneDNN has them
}

TEST(WeightPrep, StreamedWinogradConvolutionsMatchTheReference) {
  WeightCache streamed(1);
  Conv2dOptions o;
  o.cache = &streamed;
  o.algorithm = ConvAlgorithm::Winograd;
  for (auto [cin, cout, hw] : std::vector<std::array<int64_t, 3>>{{64, 96, 32}, {320, 320, 16}, {32, 32, 8}}) {
    Tensor x = randn({2, cin, hw, hw}, 300), w = randn({cout, cin, 3, 3}, 301, 0.05f).to(DType::F16);
    Tensor b = randn({cout}, 302);
    const auto p = Conv2dParams::same(1);
    Tensor y = conv2d(x, w, &b, p, o);
    EXPECT_TRUE(testing::close(y, ref::conv2d(x, w, &b, p), 1e-4f, 1e-4f)) << cin << "->" << cout << " @" << hw;
    EXPECT_TRUE(testing::deterministic([&] { return conv2d(x, w, &b, p, o); }));
  }
  EXPECT_EQ(streamed.bytes(), 0u);
}

// Large enough to be converted per call (≥ 1 MiB prepared).
TEST(WeightPrep, StreamedWeightsGiveTheSameBitsAndAreKeptOnlyWithinBudget) {
  WeightCache cache(1);  // nothing large fits
  LinearOptions o;
  o.cache = &cache;
  Tensor x = randn({3, 640}, 1);
  Tensor w1 = randn({640, 640}, 2, 0.04f).to(DType::F16), w2 = randn({1280, 640}, 3, 0.04f).to(DType::F16);
  Tensor b1 = randn({640}, 4);
  Tensor y1 = linear(x, w1, &b1, o), y2 = linear(x, w2, nullptr, o);
  EXPECT_EQ(cache.bytes(), 0u);  // streamed, not kept
  EXPECT_TRUE(testing::close(y1, ref::linear(x, w1, &b1), 1e-5f, 1e-5f));
  EXPECT_TRUE(testing::close(y2, ref::linear(x, w2), 1e-5f, 1e-5f));
  // A roomy budget keeps them from their second use on, with the same bits.
  cache.set_budget(size_t(64) << 20);
  EXPECT_TRUE(testing::same_bits(linear(x, w1, &b1, o), y1));
  EXPECT_GE(cache.bytes(), size_t(640 * 640 * 4));
  EXPECT_TRUE(testing::same_bits(linear(x, w1, &b1, o), y1));
  EXPECT_TRUE(testing::same_bits(linear(x, w2, nullptr, o), y2));
  EXPECT_GE(cache.bytes(), size_t(640 * 640 * 4 + 1280 * 640 * 4));
  // A budget for one: the other is not let in by evicting (no thrashing), both still compute the same.
  cache.clear();
  cache.set_budget(size_t(1280 * 640 * 4 + (1 << 20)));
  for (int round = 0; round < 3; ++round) {
    EXPECT_TRUE(testing::same_bits(linear(x, w1, &b1, o), y1));
    EXPECT_TRUE(testing::same_bits(linear(x, w2, nullptr, o), y2));
  }
  EXPECT_LE(cache.bytes(), cache.budget());
  EXPECT_GE(cache.bytes(), size_t(640 * 640 * 4));
}

TEST(WeightPrep, ReleaseStreamableDropsKeptWeightsAndStartsCountingAgain) {
  WeightCache cache(size_t(64) << 20);
  LinearOptions o;
  o.cache = &cache;
  Tensor x = randn({3, 640}, 5), w = randn({640, 640}, 6, 0.04f).to(DType::F16);
  Tensor y = linear(x, w, nullptr, o);
  EXPECT_EQ(cache.bytes(), 0u);  // first use: converted per call
  EXPECT_TRUE(testing::same_bits(linear(x, w, nullptr, o), y));
  EXPECT_GT(cache.bytes(), 0u);  // second use: kept
  cache.release_streamable();
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_TRUE(testing::same_bits(linear(x, w, nullptr, o), y));
  EXPECT_EQ(cache.bytes(), 0u);  // a phase that uses a weight once keeps nothing
  EXPECT_TRUE(testing::same_bits(linear(x, w, nullptr, o), y));
  EXPECT_GT(cache.bytes(), 0u);
}

TEST(WeightPrep, StreamedConvolutionsMatchKeptOnes) {
  WeightCache streamed(1), kept(size_t(1) << 30);
  Conv2dOptions so, ko;
  so.cache = &streamed;
  ko.cache = &kept;
  so.algorithm = ko.algorithm = ConvAlgorithm::Direct;
  Tensor x = randn({2, 160, 8, 8}, 10), w = randn({320, 160, 3, 3}, 11, 0.05f).to(DType::F16), b = randn({320}, 12);
  const auto p = Conv2dParams::same(1);
  Tensor a = conv2d(x, w, &b, p, so), k1 = conv2d(x, w, &b, p, ko), k2 = conv2d(x, w, &b, p, ko);
  EXPECT_TRUE(testing::same_bits(a, k1));
  EXPECT_TRUE(testing::same_bits(a, k2));
  EXPECT_EQ(streamed.bytes(), 0u);
  EXPECT_GT(kept.bytes(), 0u);
  EXPECT_TRUE(testing::close(a, ref::conv2d(x, w, &b, p), 1e-4f, 1e-4f));
}

TEST(WeightPrep, StreamedWeightsAreDeterministic) {
  WeightCache cache(1);
  LinearOptions o;
  o.cache = &cache;
  Tensor x = randn({100, 512}, 20), w = randn({1024, 512}, 21).to(DType::F16);
  EXPECT_TRUE(testing::deterministic([&] { return linear(x, w, nullptr, o); }));
}

TEST(FilePages, DropsOnlyPagesOfRegisteredFileMappings) {
  std::string path = ::testing::TempDir() + "file_pages_test.safetensors";
  write_safetensors(path, {{"w", randn({1024, 256}, 30)}});
  {
    SafeTensors st = SafeTensors::open(path);
    Tensor w = st.get("w");
    std::vector<float> before = w.to_vector();
    const size_t dropped = dropped_file_page_bytes();
    EXPECT_TRUE(drop_file_pages(w.raw(), w.nbytes()));
    EXPECT_GT(dropped_file_page_bytes(), dropped);
    EXPECT_EQ(before, w.to_vector());  // mapped again on access, same contents
    Tensor anon = randn({1024, 256}, 31);
    std::vector<float> a = anon.to_vector();
    EXPECT_FALSE(drop_file_pages(anon.raw(), anon.nbytes()));
    EXPECT_EQ(a, anon.to_vector());
  }
  std::remove(path.c_str());
}

// Resident kB of the mapping that holds p (/proc/self/smaps), or -1.
long resident_kb(const void* p) {
  std::ifstream f("/proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  for (std::string line; std::getline(f, line);) {
    unsigned long b = 0, e = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &b, &e) == 2 && line.find(':') > line.find(' ')) {
      inside = a >= b && a < e;
      continue;
    }
    long kb = 0;
    if (inside && std::sscanf(line.c_str(), "Rss: %ld kB", &kb) == 1) return kb;
  }
  return -1;
}

TEST(FilePages, PopulateMapsAFileWeightsPagesInOneCall) {
  std::string path = ::testing::TempDir() + "file_pages_populate.safetensors";
  write_safetensors(path, {{"w", randn({2048, 512}, 32)}});  // 4 MiB
  {
    SafeTensors st = SafeTensors::open(path);
    Tensor w = st.get("w");
    const std::vector<float> before = w.to_vector();
    ASSERT_TRUE(drop_file_pages(w.raw(), w.nbytes()));
    const long dropped = resident_kb(w.raw());
    if (populate_file_pages(w.raw(), w.nbytes())) {  // false only on kernels before 5.14
      if (dropped >= 0) {  // where /proc/self/smaps exists: the pages are mapped again, before any access
        EXPECT_LT(dropped, 1024);
        EXPECT_GE(resident_kb(w.raw()), 4096);
      }
    }
    EXPECT_EQ(before, w.to_vector());
    Tensor anon = randn({1024, 256}, 33);
    const std::vector<float> a = anon.to_vector();
    EXPECT_FALSE(populate_file_pages(anon.raw(), anon.nbytes()));  // not a file mapping: left alone
    EXPECT_EQ(a, anon.to_vector());
  }
  std::remove(path.c_str());
}

TEST(FilePages, KeptAndStreamedWeightsGiveTheirPagesBack) {
  std::string path = ::testing::TempDir() + "file_pages_test2.safetensors";
  write_safetensors(path, {{"w", randn({1024, 512}, 40).to(DType::F16)}});
  {
    SafeTensors st = SafeTensors::open(path);
    Tensor w = st.get("w"), x = randn({4, 512}, 41);
    WeightCache cache(1);
    LinearOptions o;
    o.cache = &cache;
    set_release_weight_pages(true);
    size_t dropped = dropped_file_page_bytes();
    Tensor y = linear(x, w, nullptr, o);
    set_release_weight_pages(false);
    EXPECT_GT(dropped_file_page_bytes(), dropped);
    // fp32 sums of 512 products in oneDNN's order (its AVX2 and AVX-512 kernels differ): relative to the output scale.
    EXPECT_LT(testing::rel_err(y, ref::linear(x, w)), 1e-5);
    dropped = dropped_file_page_bytes();
    Tensor y2 = linear(x, w, nullptr, o);  // streamed, release off: pages stay
    EXPECT_EQ(dropped_file_page_bytes(), dropped);
    EXPECT_TRUE(testing::same_bits(y, y2));
    cache.set_budget(size_t(64) << 20);
    Tensor y3 = linear(x, w, nullptr, o);  // now kept: its pages go
    EXPECT_GT(dropped_file_page_bytes(), dropped);
    EXPECT_TRUE(testing::same_bits(y, y3));
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace pigment::ops
