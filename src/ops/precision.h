// Arithmetic precision of the products (linear, conv2d). Process-wide.
//   Fp32 (the library's default; "exact" on the command line): float32 kernels, the accuracy path of the golden cases.
//   Fast: bfloat16 inputs and weights with float32 accumulation, run by oneDNN's bf16 kernels on the CPU's fast path
//         (FastPath below, chosen at run time from CPUID and oneDNN's ISA, within $PIGMENT_MAX_ISA): AMX tiles where
//         the CPU has them, else AVX-512 BF16 dot products (vdpbf16ps: AMD Zen 4/5, Intel Cooper Lake) for the shapes
//         where they beat the float32 kernels (fast_products.cc); everything else stays float32. Activations between
//         ops, norms, softmax and attention stay float32. Error and speed-up are measured in docs/performance.md.
//         The backward products take the same path (ops/fast_backward.h: linear and convolution input and weight
//         gradients, bf16 operands, float32 accumulation and results): `pigment train --mixed-precision bf16`.
//   Int8: linear layers and 3x3 convolutions as 8-bit integer products with 32-bit sums (VNNI or AMX; weights per
//         output channel; linear inputs per token, convolution inputs per image with a zero point; dynamic scales:
//         ops/int8_products.h); everything else as Fast, and so are the products the model code keeps out of int8
//         (without_int8 below). Without VNNI, exactly Fast.
//   Reference: every product, normalisation, softmax, GEGLU and attention runs its plain scalar twin (ops/reference.h):
//         the baseline the benchmarks measure the fast kernels against (bench/sd_stages_bench). Very slow.
// Without AMX and AVX-512 BF16, Fast computes exactly as Fp32.
#pragma once

namespace pigment::ops {

enum class Precision { Fp32, Fast, Reference, Int8 };
void set_precision(Precision p);
Precision precision();
// The bf16 kernels Fast uses on this CPU: AMX tiles, AVX-512 BF16 dot products, or none (Fast = Fp32). Both pigment's
// CPUID check (core/cpu_isa.h) and oneDNN's effective ISA must have the instructions.
enum class FastPath { None, Avx512Bf16, Amx };
FastPath fast_path();
const char* fast_path_name(FastPath p);  // "none", "AVX-512 BF16", "AMX bf16"
// Whether Fast changes anything on this CPU: fast_path() != None.
bool fast_precision_available();
// Turns the fast path off (Fast then computes exactly as Fp32, as on a CPU without bf16 arithmetic) or back on, so
// that tests run the fallback on any machine. Returns the previous setting.
bool set_fast_path_enabled(bool on);
// "exact" (Fp32; "fp32" parses too) / "fast" / "int8" / "reference" ↔ Precision; "auto" parses to default_precision(); parse
// throws a one-line error on anything else.
const char* precision_name(Precision p);
Precision parse_precision(const char* name);
// What the applications (`pigment generate`, `pigment serve`) use unless told: Fast where this CPU has a fast path
// (its quality, PSNR ≥ 40 dB after 20 steps at 512² on every CPU kind met, is measured in docs/performance.md), else
// Fp32. The library's own default stays Fp32 (the golden cases' path).
Precision default_precision();
// The arithmetic the products run with now, as the infotext records it: "fast" only where the fast path exists,
// "exact" for Fp32 (and for Fast without a fast path, which computes exactly as Fp32), "int8" where its path exists
// (else what it computes as), "reference".
const char* precision_used();

// The precision for the products that stay out of int8: Int8 becomes Fast, anything else is kept. The model code
// runs under it (ScopedPrecision) the products whose int8 rounding costs much of the image's quality for little of
// the work: the text encoders, cross-attention's keys and values of the text, the UNet's resampling convolutions
// (SD1.5 at 256², 20 steps: image PSNR against exact 36.9 → 41.1 dB at the same step time; docs/performance.md,
// "int8 where it pays").
Precision without_int8();

// Sets the precision for a scope and restores the previous one.
class ScopedPrecision {
 public:
  explicit ScopedPrecision(Precision p) : previous_(precision()) { set_precision(p); }
  ~ScopedPrecision() { set_precision(previous_); }
  ScopedPrecision(const ScopedPrecision&) = delete;
  ScopedPrecision& operator=(const ScopedPrecision&) = delete;

 private:
  Precision previous_;
};

}  // namespace pigment::ops
