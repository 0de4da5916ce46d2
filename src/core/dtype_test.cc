#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace pigment {

TEST(DType, HalfRoundTripsEveryHalfValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    uint16_t v = uint16_t(h);
    bool nan = (v & 0x7c00) == 0x7c00 && (v & 0x3ff);
    float f = half_to_float(v);
    if (nan) {
      EXPECT_TRUE(std::isnan(f));
      continue;
    }
    ASSERT_EQ(float_to_half(f), v) << "half bits " << h;
  }
}

TEST(DType, HalfRoundsToNearestEven) {
  EXPECT_EQ(half_to_float(float_to_half(1.0f + 2.0f / 4096)), 1.0f);  // half an ulp: rounds to even (down)
  EXPECT_EQ(half_to_float(float_to_half(1.0f + 6.0f / 4096)), 1.0f + 2.0f / 1024);  // 1.5 ulp: rounds up to even
  EXPECT_EQ(half_to_float(float_to_half(65520.f)), INFINITY);
  EXPECT_EQ(half_to_float(float_to_half(5.960464477539063e-08f)), 5.960464477539063e-08f);  // smallest subnormal
  EXPECT_EQ(float_to_half(2.0e-8f), 0);
}

TEST(DType, Bf16) {
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.5f)), 1.5f);
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 1.0f / 256)), 1.0f);  // halfway → even
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
}

TEST(DType, Names) {
  for (auto n : {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"})
    EXPECT_EQ(dtype_name(*dtype_from_name(n)), n);
  EXPECT_FALSE(dtype_from_name("F8_E4M3").has_value());
}

}  // namespace pigment
