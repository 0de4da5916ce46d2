#include "core/number_list.h"

#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace pigment {

std::vector<double> parse_number_list(const std::string& text, const std::string& what) {
  std::vector<double> out;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string item = text.substr(i, j - i);
    const size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    PIG_CHECK(a != std::string::npos, what, ": empty entry in '", text, "'");
    item = item.substr(a, b - a + 1);
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    PIG_CHECK(end && *end == '\0' && std::isfinite(v), what, ": '", item, "' is not a number (in '", text, "')");
    out.push_back(v);
    i = j + 1;
  }
  return out;
}

}  // namespace pigment
