// A1111 "extra networks" tags in prompts: `<lora:NAME>`, `<lora:NAME:WEIGHT>`, `<lora:NAME:TE:UNET>`,
// `<lora:NAME:te=0.5:unet=0.8:dyn=16>`, `<hypernet:NAME:WEIGHT>`, and any other `<kind:args>`. As in
// modules/extra_networks.py, every match of `<(\w+):([^>]+)>` is removed from the prompt and its arguments are split
// on ':'; the weights follow the Lora extension (positional te, unet defaulting to te, dyn; or named te=, unet=,
// dyn=) and extra_networks_hypernet.py (one multiplier).
#pragma once
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace pigment {

struct ExtraNetworkTag {
  std::string kind;                          // "lora", "lyco", "hypernet", ... as written
  std::string name;                          // the network's name (first positional argument)
  std::vector<std::string> items;            // every ':'-separated argument as written
  std::vector<std::string> positional;       // items without '=' (or with more than one)
  std::map<std::string, std::string> named;  // "key=value" items
  double te_weight = 1.0;                    // lora: text-encoder multiplier; hypernet: its multiplier; others: 1
  double unet_weight = 1.0;  // lora: UNet multiplier (te_weight unless given); hypernet: its multiplier; others: 1
  int dyn_dim = 0;           // lora: rank limit from the fourth positional or dyn=; 0 when not given
  std::string tag;           // the whole tag as written, "<lora:name:0.8>"
};

struct ExtraNetworkPrompt {
  std::string prompt;  // the prompt with every tag removed (nothing else changes, spaces included)
  std::vector<ExtraNetworkTag> tags;
};

// Throws pigment::Error naming the tag when a lora / hypernet weight is not a number.
ExtraNetworkPrompt extract_extra_networks(std::string_view prompt);

}  // namespace pigment
