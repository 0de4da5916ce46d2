// CPU features from CPUID and XGETBV (what the OS saves on a context switch), and the $PIGMENT_MAX_ISA cap.
#include "core/cpu_isa.h"

#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/error.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace pigment {

namespace {
struct Features {
  bool avx2 = false, avx512 = false, vnni = false, bf16 = false, fp16 = false, amx = false;
};

Features detect() {
  Features f;
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12);
  if (!osxsave) return f;
  uint32_t xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const uint64_t xcr0 = (uint64_t(xcr0_hi) << 32) | xcr0_lo;
  const bool ymm_state = (xcr0 & 0x6) == 0x6, zmm_state = (xcr0 & 0xe6) == 0xe6,
             tile_state = (xcr0 & 0x60000) == 0x60000;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const uint32_t b7 = b, c7 = c, d7 = d, max_sub = a;
  uint32_t a71 = 0;
  if (max_sub >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    a71 = a;
  }
  f.avx2 = ymm_state && fma && (b7 & (1u << 5));
  // F, DQ, BW, VL: what oneDNN's avx512_core and Highway's AVX3 target require.
  const uint32_t avx512_core = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);
  f.avx512 = f.avx2 && zmm_state && (b7 & avx512_core) == avx512_core;
  f.vnni = f.avx512 && (c7 & (1u << 11));
  f.bf16 = f.avx512 && (a71 & (1u << 5));
  f.fp16 = f.avx512 && (d7 & (1u << 23));
  f.amx = f.avx512 && tile_state && (d7 & (1u << 24)) && (d7 & (1u << 22));  // AMX-TILE and AMX-BF16
#endif
  return f;
}

const Features& features() {
  static const Features f = detect();
  return f;
}

std::optional<Isa> cap_from_environment() {
  const char* e = std::getenv("PIGMENT_MAX_ISA");
  if (!e) return std::nullopt;
  try {
    return parse_isa(e);
  } catch (const Error& err) {
    fail("PIGMENT_MAX_ISA: ", err.what());
  }
}
}  // namespace

bool cpu_supports(Isa level) {
  const Features& f = features();
  switch (level) {
    case Isa::Avx2: return f.avx2;
    case Isa::Avx512: return f.avx512;
    case Isa::Avx512Vnni: return f.vnni;
    case Isa::Avx512Bf16: return f.bf16;
    case Isa::Avx512Fp16: return f.fp16;
    case Isa::Amx: return f.amx;
  }
  return false;
}

std::optional<Isa> max_isa() {
  static const std::optional<Isa> cap = cap_from_environment();
  return cap;
}

bool cpu_has(Isa level) {
  const std::optional<Isa> cap = max_isa();
  return cpu_supports(level) && (!cap || int(level) <= int(*cap));
}

const char* isa_name(Isa level) {
  switch (level) {
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Vnni: return "avx512_vnni";
    case Isa::Avx512Bf16: return "avx512_bf16";
    case Isa::Avx512Fp16: return "avx512_fp16";
    case Isa::Amx: return "amx";
  }
  return "?";
}

std::optional<Isa> parse_isa(std::string_view name) {
  if (name.empty() || name == "all") return std::nullopt;
  for (Isa level : {Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni, Isa::Avx512Bf16, Isa::Avx512Fp16, Isa::Amx})
    if (name == isa_name(level)) return level;
  fail("unknown instruction set '", std::string(name),
       "' (expected avx2, avx512, avx512_vnni, avx512_bf16, avx512_fp16, amx or all)");
}

}  // namespace pigment
