// The low-memory mode's tiled VAE decode against the untiled one on a full-size SD1.5 VAE (random weights from
// pigment init's generator) at 512x512, the size where 256-pixel tiles cut the image into 3x3 overlapping tiles.
// GroupNorm statistics are per tile, so the two differ a little; a broken tiler (a wrong offset, a missing blend,
// a tile of the wrong size) costs far more than the threshold.
#include "pipelines/memory_mode.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "core/allocator.h"
#include "models/model_family.h"
#include "models/random_init.h"
#include "models/vae.h"
#include "ops/fast_products.h"
#include "ops/int8_products.h"
#include "ops/ops.h"

namespace pigment {
namespace {

Vae full_size_random_vae(uint64_t seed) {
  auto map = std::make_shared<TensorMap>();
  for (const Layout& layout : preset_single_file_layouts("sd15"))
    for (const LayoutEntry& e : layout) {
      if (e.component != "vae") continue;
      Tensor t = Tensor::empty(e.shape);
      const int64_t n = t.numel();
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) t.f32()[i] = random_init_value(seed, e.full_name(), e.shape, i);
      map->emplace(e.name, t);
    }
  return Vae::load(ModelConfig(family_preset("sd15").vae, "sd15 preset vae"), Weights(map, "random sd15 vae"));
}

// PSNR (dB) of two decoded images, each mapped from [-1, 1] to [0, 1] and clamped as the pipeline does.
double psnr(const Tensor& a, const Tensor& b) {
  double se = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    auto px = [](float v) { return std::clamp(v * 0.5 + 0.5, 0.0, 1.0); };
    const double d = px(a.f32()[i]) - px(b.f32()[i]);
    se += d * d;
  }
  return 10 * std::log10(1.0 / (se / double(a.numel())));
}

// The bf16 copies' budget from the image size (docs/performance.md, "The bf16 budget fitted to the image size"): all of
// SD1.5's UNet in bf16 (1.72 GB) at 256x256, about 1.35 GB at 512x512, nothing at 1024x1024 or for four 512x512
// pictures at once; never more for more pixels.
TEST(MemoryMode, Bf16BudgetShrinksWithTheImage) {
  EXPECT_GE(bf16_budget_for(1, 256 * 256), size_t(1.75e9));
  EXPECT_NEAR(double(bf16_budget_for(1, 512 * 512)), 1.35e9, 0.01e9);
  EXPECT_EQ(bf16_budget_for(1, 1024 * 1024), 1u);
  EXPECT_EQ(bf16_budget_for(4, 512 * 512), 1u);
  EXPECT_GT(bf16_budget_for(1, 512 * 512), bf16_budget_for(2, 512 * 512));
  EXPECT_GT(bf16_budget_for(1, 384 * 384), bf16_budget_for(1, 512 * 512));
}

TEST(MemoryMode, ExactWeightBudgetIsAQuarterOfTheMachineWithinBounds) {
  if (std::getenv("PIGMENT_WEIGHT_CACHE_MB")) {  // the user's budget decides
    EXPECT_EQ(exact_weight_budget(size_t(64) << 30), ops::default_weight_cache_budget());
    return;
  }
  EXPECT_EQ(exact_weight_budget(size_t(2) << 30), size_t(1280) << 20);
  EXPECT_EQ(exact_weight_budget(size_t(16) << 30), size_t(4) << 30);
  EXPECT_EQ(exact_weight_budget(size_t(64) << 30), size_t(6) << 30);
  EXPECT_EQ(exact_weight_budget(0), size_t(1280) << 20);
}

// The exact path, chosen over a faster default, keeps its float32 weights over a phase boundary (the next image's
// UNet finds them prepared); the default budget (fast, training) drops them there.
TEST(MemoryMode, ExactPathKeepsItsWeightsOverPhasesWhereFastIsTheDefault) {
  Tensor x = Tensor::full({3, 640}, 0.5f), w = Tensor::full({640, 640}, 0.01f).to(DType::F16);
  auto keep_w = [&] {
    ops::default_weight_cache().clear();
    ops::linear(x, w);
    ops::linear(x, w);  // kept from its second use
    return ops::default_weight_cache().bytes();
  };
  use_default_memory_settings(ops::Precision::Fp32);
  const size_t kept = keep_w();
  ASSERT_GT(kept, 0u);
  memory_phase_boundary();
  if (ops::default_precision() != ops::Precision::Fp32) {
    EXPECT_GT(ops::default_weight_cache().budget(), ops::default_weight_cache_budget());
    EXPECT_EQ(ops::default_weight_cache().bytes(), kept);
  } else {  // no faster default on this CPU: exact is the default mode and keeps the default budget
    EXPECT_EQ(ops::default_weight_cache().budget(), ops::default_weight_cache_budget());
    EXPECT_EQ(ops::default_weight_cache().bytes(), 0u);
  }
  use_default_weight_budget();
  EXPECT_EQ(ops::default_weight_cache().budget(), ops::default_weight_cache_budget());
  ASSERT_GT(keep_w(), 0u);
  memory_phase_boundary();
  EXPECT_EQ(ops::default_weight_cache().bytes(), 0u);
  ops::default_weight_cache().clear();
}

// A process that loads a model in low-memory mode and later one in the default mode gets the default mode's settings
// back: Winograd allowed, the bf16 budget, the tensor pool keeping free blocks.
TEST(MemoryMode, DefaultSettingsUndoLowMemory) {
  const size_t bf16_default = ops::fast::bf16_weight_budget();
  use_low_memory_settings();
  EXPECT_EQ(ops::default_conv_algorithm(), ops::ConvAlgorithm::Direct);
  EXPECT_EQ(ops::fast::bf16_weight_budget(), 1u);
  EXPECT_FALSE(ops::int8::set_keep_weights(false));  // int8 weights quantised per call, none kept
  const size_t before = pooled_memory_bytes();
  { auto small = allocate(size_t(1) << 20); }
  EXPECT_EQ(pooled_memory_bytes(), before);  // from malloc
  use_default_memory_settings(ops::Precision::Fast);
  EXPECT_EQ(ops::default_conv_algorithm(), ops::ConvAlgorithm::Auto);
  EXPECT_EQ(ops::fast::bf16_weight_budget(), bf16_default);
  EXPECT_TRUE(ops::int8::set_keep_weights(true));
  { auto pooled = allocate(size_t(1) << 20); }
  EXPECT_GT(cached_memory_bytes(), 0u);  // from the pool, kept there once freed
}

TEST(MemoryMode, TiledDecodeOfAFullSizeVaeAt512IsCloseToUntiled) {
  const Vae vae = full_size_random_vae(7);
  ASSERT_EQ(vae.config().block_out_channels.size(), 4u);
  // A latent of N(0, 1) noise (Box-Muller over a fixed LCG).
  Tensor z = Tensor::empty({1, 4, 64, 64});
  uint64_t s = 12345;
  auto uniform = [&] { return ((s = s * 6364136223846793005ull + 1442695040888963407ull) >> 11) * 0x1.0p-53; };
  for (int64_t i = 0; i < z.numel(); ++i)
    z.f32()[i] = float(std::sqrt(-2 * std::log(1 - uniform())) * std::cos(2 * M_PI * uniform()));
  const VaeTiling tiled = decode_tiling(true);
  ASSERT_TRUE(tiled.enabled);
  ASSERT_EQ(tiled.tile_sample_size, 256);
  const Tensor full = vae.decode(z), tiles = vae.decode(z, tiled);
  ASSERT_EQ(full.shape(), (Shape{1, 3, 512, 512}));
  ASSERT_EQ(tiles.shape(), full.shape());
  const double db = psnr(full, tiles);
  std::printf("tiled (256-pixel tiles) vs untiled VAE decode at 512x512: PSNR %.2f dB\n", db);
  // 30.2 dB measured (seed 7, this latent): below the 35 dB a trained VAE reaches, because with random weights the
  // mid block's attention and the GroupNorm statistics of each 32x32-latent tile differ more from the whole image's
  // (docs/status.md). The threshold sits under the measurement, far above a broken tiler.
  EXPECT_GE(db, 27.0);
  // The measure can fail: the tiled image with one 64-pixel column block misplaced by 8 pixels (a tile at a wrong
  // offset) is far below the threshold.
  Tensor moved = tiles.clone();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 512; ++y)
      for (int64_t x = 192; x < 256; ++x) moved.f32()[(c * 512 + y) * 512 + x] = tiles.f32()[(c * 512 + y) * 512 + x + 8];
  const double moved_db = psnr(full, moved);
  std::printf("with one 64-pixel block misplaced by 8 pixels: PSNR %.2f dB\n", moved_db);
  EXPECT_LT(moved_db, 27.0);
}

}  // namespace
}  // namespace pigment
