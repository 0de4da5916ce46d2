// The instruction sets pigment may use, and the one process-wide switch that caps them.
//
// $PIGMENT_MAX_ISA (read once, at start-up) names the highest level any kernel may use: avx2, avx512, avx512_vnni,
// avx512_bf16, avx512_fp16 or amx (unset, empty or "all": no cap). It caps pigment's own checks (cpu_has below),
// Highway's run-time targets and oneDNN's ISA (ops/cpu_isa_cap.cc applies those two before the first kernel), so
// one machine can run the code paths of an older CPU: the forced-AVX2 ctest entries do. oneDNN's own
// $ONEDNN_MAX_CPU_ISA caps oneDNN alone and is overridden by $PIGMENT_MAX_ISA where both are set.
#pragma once

#include <optional>
#include <string_view>

namespace pigment {

// Levels, lowest first; each adds its instructions to AVX2 + FMA (and from Avx512 on, to AVX-512 F/BW/VL/DQ).
// The levels above Avx512 are not nested in every CPU (an AMD Zen 4 has BF16 but no FP16), so a level counts as
// present when its own instructions are; the cap is an order.
enum class Isa { Avx2, Avx512, Avx512Vnni, Avx512Bf16, Avx512Fp16, Amx };

// Whether this CPU (and the OS, which must save the wider registers) has the level's instructions, whatever the cap.
bool cpu_supports(Isa level);
// The cap: $PIGMENT_MAX_ISA, or nothing where it is unset. Throws (once, on first use) on an unknown name.
std::optional<Isa> max_isa();
// Whether kernels may use the level: the CPU has it and the cap allows it. Every CPU-dependent path asks this.
bool cpu_has(Isa level);

const char* isa_name(Isa level);
// "avx2", "avx512", ... ↔ Isa; "all" or "" is no cap (nullopt). Throws a one-line error naming the choices.
std::optional<Isa> parse_isa(std::string_view name);

}  // namespace pigment
