#include "models/controlnet_loader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "io/safetensors.h"
#include "models/checkpoint_layout.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;

// The golden diffusers ControlNet written out in the original control_model.* naming, then read back through
// load_controlnet: the residuals must be the same.
TEST(ControlNetLoader, OriginalLayoutEqualsDiffusers) {
  const char* env = std::getenv("PIGMENT_SHARED_DIR");
  fs::path models = fs::path(env ? env : "../shared") / "golden" / "models";
  if (!fs::exists(models / "controlnet" / "config.json")) GTEST_FAIL() << "no golden data";
  std::ifstream f(models / "unet_sd1" / "config.json");
  nlohmann::json unet_config = nlohmann::json::parse(f);
  Weights w = load_diffusers_weights((models / "controlnet").string());

  NamedTensors original;
  std::set<std::string> done;
  for (const auto& e : unet_layout(unet_config, "control_model."))
    if (w.has(e.name) && !done.count(e.name)) {
      original.emplace_back(e.file_key, w.get(e.name).reshape(e.file_shape));
      done.insert(e.name);
    }
  for (const auto& [name, t] : w.all()) {
    std::string key;
    if (name.rfind("controlnet_cond_embedding.conv_in.", 0) == 0) key = "input_hint_block.0." + name.substr(34);
    else if (name.rfind("controlnet_cond_embedding.conv_out.", 0) == 0) key = "input_hint_block.14." + name.substr(35);
    else if (name.rfind("controlnet_cond_embedding.blocks.", 0) == 0) {
      std::string rest = name.substr(33);
      int b = std::stoi(rest.substr(0, rest.find('.')));
      key = "input_hint_block." + std::to_string(2 * b + 2) + rest.substr(rest.find('.'));
    } else if (name.rfind("controlnet_down_blocks.", 0) == 0) {
      std::string rest = name.substr(23);
      key = "zero_convs." + rest.substr(0, rest.find('.')) + ".0" + rest.substr(rest.find('.'));
    } else if (name.rfind("controlnet_mid_block.", 0) == 0) {
      key = "middle_block_out.0." + name.substr(21);
    }
    if (!key.empty()) original.emplace_back("control_model." + key, t);
  }
  fs::path file = fs::temp_directory_path() / "pigment_controlnet_original.safetensors";
  write_safetensors(file.string(), original);
  ControlNet a = load_controlnet(file.string(), unet_config);
  ControlNet b = load_controlnet((models / "controlnet").string(), unet_config);
  fs::remove(file);

  Tensor sample = Tensor::full({1, 4, 8, 8}, 0.1f), ctx = Tensor::full({1, 5, 32}, 0.2f);
  Tensor cond = Tensor::empty({1, 3, 64, 64});
  for (int64_t i = 0; i < cond.numel(); ++i) cond.f32()[i] = 0.5f + 0.5f * std::sin(0.1f * float(i));
  ControlNetOutput ra = a.forward(sample, {500}, ctx, cond, 0.8f), rb = b.forward(sample, {500}, ctx, cond, 0.8f);
  ASSERT_EQ(ra.down_block_residuals.size(), rb.down_block_residuals.size());
  for (size_t k = 0; k < ra.down_block_residuals.size(); ++k)
    for (int64_t i = 0; i < ra.down_block_residuals[k].numel(); ++i)
      ASSERT_EQ(ra.down_block_residuals[k].f32()[i], rb.down_block_residuals[k].f32()[i]) << k;
  for (int64_t i = 0; i < ra.mid_block_residual.numel(); ++i)
    ASSERT_EQ(ra.mid_block_residual.f32()[i], rb.mid_block_residual.f32()[i]);
}

}  // namespace
}  // namespace pigment
