#include "core/hash.h"

#include <cstdio>
#include <cstring>

#include "core/tensor.h"

namespace pigment {

uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t hash_bytes(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = mix64(n), word;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::memcpy(&word, p + i, 8);
    h = mix64(h ^ word) + 0x9E3779B97F4A7C15ull;
  }
  for (; i < n; ++i) h = mix64(h ^ p[i]);
  return h;
}

uint64_t hash_bytes(const Tensor& t) { return hash_bytes(t.raw(), t.nbytes()); }

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace pigment
