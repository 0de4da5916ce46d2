// Element types of stored tensors. Compute is float32 unless a kernel says otherwise.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pigment {

enum class DType : uint8_t { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool };

size_t dtype_size(DType t);
// Names as safetensors spells them: "F32", "F16", "BF16", "I64", "BOOL", ...
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);

// IEEE half and bfloat16 conversions (round to nearest even).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
inline float bf16_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
uint16_t float_to_bf16(float f);

// Converts n elements of type `from` at src to float32.
void convert_to_f32(DType from, const void* src, float* dst, size_t n);
// Converts n float32 values to type `to` (float types and integers, rounding to nearest).
void convert_from_f32(DType to, const float* src, void* dst, size_t n);

}  // namespace pigment
