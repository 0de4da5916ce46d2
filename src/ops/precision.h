// Arithmetic precision of the products (linear, conv2d). Process-wide.
//   Fp32 (default): float32 kernels, the accuracy path.
//   Fast: bfloat16 inputs and weights with float32 accumulation on the CPU's AMX tile units (oneDNN's AMX kernels),
//         where the CPU has them and a kernel exists for the shape; everything else stays float32. Activations between
//         ops, norms, softmax and attention stay float32. Error and speed-up are measured in docs/performance.md.
//   Reference: every product, normalisation, softmax, GEGLU and attention runs its plain scalar twin (ops/reference.h):
//         the baseline the benchmarks measure the fast kernels against (bench/sd_stages_bench). Very slow.
// Without AMX, Fast computes exactly as Fp32 (the bf16 dot products of AVX-512 are slower than its fp32 FMAs).
#pragma once

namespace pigment::ops {

enum class Precision { Fp32, Fast, Reference };
void set_precision(Precision p);
Precision precision();
// Whether Fast changes anything on this CPU (oneDNN sees AMX with bf16).
bool fast_precision_available();
// "fp32" / "fast" / "reference" ↔ Precision; parse throws a one-line error on anything else.
const char* precision_name(Precision p);
Precision parse_precision(const char* name);

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
