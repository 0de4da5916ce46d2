#include "core/dtype.h"

#include <cmath>
#include <cstring>

#include "core/error.h"

namespace pigment {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    case DType::I8: case DType::U8: case DType::Bool: return 1;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view n) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I64, DType::I32, DType::I16,
                  DType::I8, DType::U8, DType::Bool})
    if (dtype_name(t) == n) return t;
  return std::nullopt;
}

float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { ++e; mant <<= 1; } while (!(mant & 0x400));
      bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint16_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx >= 0x7f800000u) return sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0);  // inf / nan
  if (absx >= 0x477ff000u) return sign | 0x7c00;  // rounds to inf
  if (absx < 0x38800000u) {  // subnormal or zero in half
    if (absx < 0x33000000u) return sign;
    uint32_t mant = (absx & 0x7fffff) | 0x800000;
    int shift = 126 - int(absx >> 23);  // half subnormal = mant * 2^(e-126) in units of 2^-24
    uint32_t half_mant = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1))) ++half_mant;
    return sign | uint16_t(half_mant);
  }
  uint32_t e = (absx >> 23) - 127 + 15;
  uint32_t mant = absx & 0x7fffff;
  uint32_t h = e << 10 | mant >> 13;
  uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return sign | uint16_t(h);
}

uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000u) return uint16_t((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return uint16_t(x >> 16);
}

void convert_to_f32(DType from, const void* src, float* dst, size_t n) {
  switch (from) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F16: { auto s = static_cast<const uint16_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = half_to_float(s[i]); return; }
    case DType::BF16: { auto s = static_cast<const uint16_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]); return; }
    case DType::F64: { auto s = static_cast<const double*>(src); for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]); return; }
    case DType::I64: { auto s = static_cast<const int64_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]); return; }
    case DType::I32: { auto s = static_cast<const int32_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]); return; }
    case DType::I16: { auto s = static_cast<const int16_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]); return; }
    case DType::I8: { auto s = static_cast<const int8_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]); return; }
    case DType::U8: case DType::Bool: { auto s = static_cast<const uint8_t*>(src); for (size_t i = 0; i < n; ++i) dst[i] = float(s[i]); return; }
  }
}

void convert_from_f32(DType to, const float* src, void* dst, size_t n) {
  switch (to) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F16: { auto d = static_cast<uint16_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = float_to_half(src[i]); return; }
    case DType::BF16: { auto d = static_cast<uint16_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = float_to_bf16(src[i]); return; }
    case DType::F64: { auto d = static_cast<double*>(dst); for (size_t i = 0; i < n; ++i) d[i] = src[i]; return; }
    case DType::I64: { auto d = static_cast<int64_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = int64_t(std::llround(src[i])); return; }
    case DType::I32: { auto d = static_cast<int32_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = int32_t(std::lround(src[i])); return; }
    case DType::I16: { auto d = static_cast<int16_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = int16_t(std::lround(src[i])); return; }
    case DType::I8: { auto d = static_cast<int8_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = int8_t(std::lround(src[i])); return; }
    case DType::U8: case DType::Bool: { auto d = static_cast<uint8_t*>(dst); for (size_t i = 0; i < n; ++i) d[i] = uint8_t(std::lround(src[i])); return; }
  }
}

}  // namespace pigment
