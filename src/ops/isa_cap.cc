// Highway's targets and oneDNN's ISA capped by $PIGMENT_MAX_ISA (see isa_cap.h).
#include "ops/isa_cap.h"

#include <hwy/targets.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "core/cpu_isa.h"
#include "core/error.h"
#include "ops/simd_kernels.h"

namespace pigment::ops {

namespace {
// Highway lists targets best first, one bit each (a lower bit is a better target): capping at a target disables
// every bit below its own.
int64_t highway_targets_above(Isa cap) {
  if (cap == Isa::Avx2) return HWY_AVX2 - 1;  // AVX3, AVX3_DL
  if (cap == Isa::Avx512) return HWY_AVX3 - 1;  // AVX3_DL (it needs VNNI and more)
  return 0;
}

dnnl::cpu_isa onednn_isa(Isa cap) {
  switch (cap) {
    case Isa::Avx2: return dnnl::cpu_isa::avx2;
    case Isa::Avx512: return dnnl::cpu_isa::avx512_core;
    case Isa::Avx512Vnni: return dnnl::cpu_isa::avx512_core_vnni;
    case Isa::Avx512Bf16:
    case Isa::Avx512Fp16: return dnnl::cpu_isa::avx512_core_bf16;  // oneDNN 2.6 has no FP16 level below AMX
    case Isa::Amx: return dnnl::cpu_isa::avx512_core_amx;
  }
  return dnnl::cpu_isa::all;
}

std::once_flag g_applied;

void apply() {
  const std::optional<Isa> cap = max_isa();
  if (!cap) return;
  if (const int64_t off = highway_targets_above(*cap)) hwy::DisableTargets(off);
  try {
    dnnl::set_max_cpu_isa(onednn_isa(*cap));
  } catch (const dnnl::error& e) {
    fail("PIGMENT_MAX_ISA=", isa_name(*cap), ": oneDNN refused the cap (", e.what(),
         "); its ISA is fixed at its first use, which came before the cap");
  }
}

// At start-up; an invalid $PIGMENT_MAX_ISA stops the program with its message rather than an uncaught exception.
const bool g_applied_at_start = [] {
  try {
    apply_isa_cap();
  } catch (const Error& e) {
    std::fprintf(stderr, "pigment: %s\n", e.what());
    std::exit(2);
  }
  return true;
}();
}  // namespace

void apply_isa_cap() { std::call_once(g_applied, apply); }

const char* simd_target_name() { return simd::target_name(); }

const char* onednn_isa_name() {
  apply_isa_cap();
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::all: return "all";
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
  }
  return "?";
}

}  // namespace pigment::ops
