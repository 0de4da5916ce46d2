// Hypernetwork training (--method hypernetwork): A1111's hypernetwork, a pair of small MLPs per attention context
// width that transform the keys' and the values' context (context + mlp(context)), trained with the UNet, VAE and
// text encoder frozen. The modules are pigment's inference ones (models/hypernetwork.h) entered through
// UNetHooks::attention_context, so training records exactly what generation runs. Options follow A1111's
// create_hypernetwork (layer structure, activation, layer norm, dropout, weight initialisation); the result is
// A1111's .pt, with the optimizer's state beside it as <output>.optim (A1111's optimizer_saved_dict).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pigment::training {

struct HypernetworkOptions {
  std::string layer_structure = "1, 2, 1";  // width multipliers, first and last 1
  std::string activation = "linear";        // A1111's activation_func names ("swish" = Hardswish)
  std::string weight_init = "Normal";       // Normal, XavierUniform, XavierNormal, KaimingUniform, KaimingNormal
  bool layer_norm = false;                  // add_layer_norm
  bool activate_output = false;
  bool use_dropout = false;
  bool last_layer_dropout = false;
  std::string dropout_structure;  // e.g. "0, 0.3, 0"; "" = from use_dropout as A1111
  std::string sizes;              // context widths, e.g. "768, 320, 640, 1280"; "" = every width the UNet's
                                  // attention layers see (A1111's default modules on SD1)
};

}  // namespace pigment::training
