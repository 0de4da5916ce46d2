// hypernetwork/a1111: an A1111 hypernetwork .pt: the k/v context transforms at the multipliers the tensor names carry
// (context_k.mult<M>), and one attention layer of the tiny SD1 UNet with it (cross- and self-attention) and without
// it. The file, the attention layer and the multiplier of the attention outputs come from case.json.
#include <regex>

#include "case_inputs.h"
#include "golden.h"
#include "models/hypernetwork.h"
#include "models/transformer2d.h"
#include "models/unet.h"

namespace pigment::golden {
namespace {

void run_hypernetwork(Case& c) {
  const auto& spec = c.spec();
  std::string file;
  for (const auto& [name, what] : spec["files"].items())
    if (fs::path(name).extension() == ".pt") file = name;
  PIG_CHECK(!file.empty(), c.name(), ": case.json lists no .pt file");
  auto net = std::make_shared<const Hypernetwork>(Hypernetwork::load((c.dir() / file).string()));
  Tensor context = c.tensor("context"), x = c.tensor("x");
  const auto multipliers = scales_in_names(c, "context_k.mult");
  PIG_CHECK(!multipliers.empty(), c.name(), ": no context_k.mult<M> tensors");
  for (const auto& [key, m] : multipliers) {
    Tensor k = context, v = context;
    net->apply(k, v, float(m));
    c.compare("context_k.mult" + key, k);
    c.compare("context_v.mult" + key, v);
  }
  // "attention_CrossAttention_forward(attn2 of unet_sd1 down_blocks.0.attentions.0.transformer_blocks.0, x, context)
  //  with the hypernetwork loaded (multiplier 1.0)"
  const std::string meaning = spec["tensors"]["cross_attention_out"].value("meaning", "");
  std::smatch m;
  PIG_CHECK(std::regex_search(meaning, m, std::regex(R"((attn\d) of (\w+) (down_blocks\.(\d+)\.[\w.]*\w))")), c.name(),
            ": the meaning of cross_attention_out names no attention layer");
  const std::string attn_name = m[1], block_path = m[3];
  const fs::path unet_dir = c.models_dir() / std::string(m[2]);
  const size_t block = std::stoul(m[4]);
  PIG_CHECK(std::regex_search(meaning, m, std::regex(R"(multiplier ([0-9.]+))")), c.name(),
            ": the meaning of cross_attention_out names no multiplier");
  const float multiplier = std::stof(m[1]);
  UNetConfig cfg = UNetConfig::load((unet_dir / "config.json").string());
  Weights w = load_diffusers_weights(unet_dir.string());
  const int heads = cfg.num_attention_heads.at(block);
  const int64_t dim = cfg.block_out_channels.at(block);
  Attention attn(w.sub(block_path + "." + attn_name), dim, cfg.cross_attention_dim.at(block), heads, dim / heads);
  UNetHooks hooks;
  hooks.attention_context = hypernetwork_hook({{net, multiplier}});
  c.compare("cross_attention_out", attn.forward(x, &context, hooks));
  c.compare("self_attention_out", attn.forward(x, nullptr, hooks));
  c.compare("cross_attention_out.no_hypernet", attn.forward(x, &context, {}));
}

Register reg("hypernetwork/", run_hypernetwork);

}  // namespace
}  // namespace pigment::golden
