// hypernetwork/a1111: an A1111 hypernetwork .pt: the k/v context transforms at two multipliers, and one attention
// layer of the tiny SD1 UNet with it (cross- and self-attention) and without it.
#include "golden.h"
#include "models/hypernetwork.h"
#include "models/transformer2d.h"
#include "models/unet.h"

namespace pigment::golden {
namespace {

void run_hypernetwork(Case& c) {
  auto net = std::make_shared<const Hypernetwork>(Hypernetwork::load((c.dir() / "tiny_hypernet.pt").string()));
  Tensor context = c.tensor("context"), x = c.tensor("x");
  for (auto [m, key] : {std::pair<float, const char*>{1.f, "mult1p0"}, {0.6f, "mult0p6"}}) {
    Tensor k = context, v = context;
    net->apply(k, v, m);
    c.compare(std::string("context_k.") + key, k);
    c.compare(std::string("context_v.") + key, v);
  }
  fs::path unet_dir = c.models_dir() / "unet_sd1";
  UNetConfig cfg = UNetConfig::load((unet_dir / "config.json").string());
  Weights w = load_diffusers_weights(unet_dir.string());
  int heads = cfg.num_attention_heads[0];
  int64_t dim = cfg.block_out_channels[0];
  Attention attn(w.sub("down_blocks.0.attentions.0.transformer_blocks.0.attn2"), dim, cfg.cross_attention_dim[0],
                 heads, dim / heads);
  UNetHooks hooks;
  hooks.attention_context = hypernetwork_hook({{net, 1.f}});
  c.compare("cross_attention_out", attn.forward(x, &context, hooks));
  c.compare("self_attention_out", attn.forward(x, nullptr, hooks));
  c.compare("cross_attention_out.no_hypernet", attn.forward(x, &context, {}));
}

Register reg("hypernetwork/", run_hypernetwork);

}  // namespace
}  // namespace pigment::golden
