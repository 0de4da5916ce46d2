#include "core/cpu_isa.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace pigment {
namespace {

const Isa kLevels[] = {Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni, Isa::Avx512Bf16, Isa::Avx512Fp16, Isa::Amx};

TEST(CpuIsa, NamesRoundTripAndUnknownOnesAreRefused) {
  for (Isa level : kLevels) EXPECT_EQ(parse_isa(isa_name(level)), level);
  EXPECT_EQ(parse_isa("all"), std::nullopt);
  EXPECT_EQ(parse_isa(""), std::nullopt);
  try {
    parse_isa("avx3");
    FAIL() << "no error for avx3";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("avx3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("avx512_bf16"), std::string::npos) << e.what();
  }
}

TEST(CpuIsa, LevelsAreUsableOnlyWhereTheCpuHasThemAndTheCapAllows) {
  const std::optional<Isa> cap = max_isa();
  for (Isa level : kLevels) {
    SCOPED_TRACE(isa_name(level));
    EXPECT_EQ(cpu_has(level), cpu_supports(level) && (!cap || int(level) <= int(*cap)));
    // Every AVX-512 level needs the AVX-512 base, and that needs AVX2.
    if (level != Isa::Avx2 && cpu_supports(level)) {
      EXPECT_TRUE(cpu_supports(Isa::Avx512));
    }
  }
  if (cpu_supports(Isa::Avx512)) {
    EXPECT_TRUE(cpu_supports(Isa::Avx2));
  }
  std::printf("CPU: %s%s%s%s%s%s; PIGMENT_MAX_ISA: %s\n", cpu_supports(Isa::Avx2) ? "avx2 " : "",
              cpu_supports(Isa::Avx512) ? "avx512 " : "", cpu_supports(Isa::Avx512Vnni) ? "avx512_vnni " : "",
              cpu_supports(Isa::Avx512Bf16) ? "avx512_bf16 " : "", cpu_supports(Isa::Avx512Fp16) ? "avx512_fp16 " : "",
              cpu_supports(Isa::Amx) ? "amx" : "", cap ? isa_name(*cap) : "(none)");
}

}  // namespace
}  // namespace pigment
