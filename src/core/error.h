// Errors are for people: every failure says what, where and what was expected.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace pigment {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
}  // namespace detail

// Builds a message from pieces: fail("tensor ", name, ": expected shape ", s).
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  throw Error(os.str());
}

}  // namespace pigment

#define PIG_CHECK(cond, ...)              \
  do {                                    \
    if (!(cond)) ::pigment::fail(__VA_ARGS__); \
  } while (0)
