// Comma-separated numbers as command-line flags take them ("1, 2.5, 1"): the hypernetwork's layer and dropout
// structures, the caption-line weights.
#pragma once

#include <string>
#include <vector>

namespace pigment {

// "1, 2.5, 1" → {1, 2.5, 1}: entries trimmed of spaces and tabs, each a whole finite number; an empty entry or text
// that is not a number is an error that names `what` (the flag) and the text.
std::vector<double> parse_number_list(const std::string& text, const std::string& what);

}  // namespace pigment
