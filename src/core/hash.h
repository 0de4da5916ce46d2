// A fast, fully specified 64-bit hash of bytes (not cryptographic): keys of the training caches (which image a
// cached VAE posterior belongs to, and the file names of the on-disk latent cache, so its values must not change
// without a new cache folder name), built on splitmix64's finaliser.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace pigment {

class Tensor;

// splitmix64's output function: a bijection of 64-bit words that mixes every input bit into every output bit.
uint64_t mix64(uint64_t x);
// The hash of n bytes: h = mix64(n); per little-endian 8-byte word h = mix64(h ^ word) + 0x9E3779B97F4A7C15; per
// remaining byte h = mix64(h ^ byte).
uint64_t hash_bytes(const void* data, size_t n);
inline uint64_t hash_bytes(const std::string& s) { return hash_bytes(s.data(), s.size()); }
// The hash of a contiguous tensor's bytes (its values as stored; not its shape or dtype).
uint64_t hash_bytes(const Tensor& t);
// v as 16 lower-case hex digits.
std::string hex64(uint64_t v);

}  // namespace pigment
