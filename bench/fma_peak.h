// The fp32 FMA peak of this machine, measured in the running process so that every benchmark can state its figures
// as a share of what the cores can do at that moment.
#pragma once

namespace pigment::bench {

struct FmaPeak {
  double flops_per_s = 0;  // all threads together; 0 if the CPU has neither AVX-512 nor AVX2+FMA
  const char* isa = "";    // "avx512f" / "avx2+fma" / "none"
  int threads = 0;
};

// The best of `runs` timings of independent register-resident FMA chains on every OpenMP thread (a peak: other
// processes can only lower a run's figure); each thread's rate is taken on its own CPU clock, so time it spends
// preempted on a busy machine does not count.
FmaPeak measure_fma_peak(int runs = 7);

// The bf16 dot-product peak: AVX-512 BF16 `vdpbf16ps` (each lane of 16 adds two bf16 products into an fp32
// accumulator: 64 flop per instruction), measured the same way. flops_per_s is 0 and isa "none" where the CPU (or
// $PIGMENT_MAX_ISA) has no AVX-512 BF16.
FmaPeak measure_bf16_peak(int runs = 7);

// The int8 peak: AVX-512 VNNI `vpdpbusd` (each of 16 int32 lanes adds four u8 · s8 products: 128 ops per
// instruction), in ops/s; 0 / "none" without AVX-512 VNNI.
FmaPeak measure_int8_peak(int runs = 7);
// The fp16 peak: AVX-512 FP16 `vfmadd231ph` (32 lanes, 64 flop per instruction); 0 / "none" without AVX-512 FP16.
FmaPeak measure_fp16_peak(int runs = 7);

}  // namespace pigment::bench
