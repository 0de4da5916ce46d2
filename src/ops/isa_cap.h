// $PIGMENT_MAX_ISA (core/cpu_isa.h) applied to the libraries the ops run on: Highway's run-time targets and oneDNN's
// ISA. A static initializer here applies it at start-up, before any kernel is dispatched or any primitive is made
// (oneDNN fixes its ISA at its first query); engine() applies it again, which is free.
#pragma once

namespace pigment::ops {

// Idempotent. Throws pigment::Error where oneDNN's ISA was already fixed (a primitive made before the cap).
void apply_isa_cap();

// What the fast kernels run on now: Highway's target for pigment's SIMD kernels ("AVX3_DL", "AVX3", "AVX2", ...)
// and oneDNN's effective ISA ("avx512_core_bf16", "avx2", ...). For tests and benchmark headers.
const char* simd_target_name();
const char* onednn_isa_name();

}  // namespace pigment::ops
