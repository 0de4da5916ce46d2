// pigment's own model (models/pigment-emoji.safetensors, trained by `pigment train --recipe emoji`): what
// `pigment generate` uses when no -m is given.
#pragma once
#include <string>
#include <vector>

namespace pigment::cli {

// The file name of the shipped model.
inline constexpr const char* kDefaultModelName = "pigment-emoji.safetensors";

// Where the default model is looked for, in order: $PIGMENT_MODEL; beside the binary's install prefix
// (<prefix>/share/pigment/models/); the source tree the binary was built in (<repo>/models/, for build/bin/pigment).
std::vector<std::string> default_model_candidates();
// $PIGMENT_MODEL if set (an error if it is not a file), else the first candidate that exists; throws a one-line
// error listing where it looked when none does.
std::string default_model_path();

}  // namespace pigment::cli
