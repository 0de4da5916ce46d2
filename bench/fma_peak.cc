#include "fma_peak.h"

#include <immintrin.h>
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/cpu_isa.h"

namespace pigment::bench {
namespace {

// Twelve independent chains (more than FMA latency × ports), each in a named register: a loop over an array of
// accumulators may be left in memory by the compiler and then measures half the peak.
#define PIG_FMA12(F, a, b)                                                                                     \
  x0 = F(x0, a, b); x1 = F(x1, a, b); x2 = F(x2, a, b); x3 = F(x3, a, b); x4 = F(x4, a, b); x5 = F(x5, a, b); \
  x6 = F(x6, a, b); x7 = F(x7, a, b); x8 = F(x8, a, b); x9 = F(x9, a, b); x10 = F(x10, a, b); x11 = F(x11, a, b)
// The twelve chains, started at 0, step, 2·step, ...; and their sum (a tree of ADDs).
#define PIG_INIT12(T, SET, step)                                                                                 \
  T x0 = SET(0 * step), x1 = SET(1 * step), x2 = SET(2 * step), x3 = SET(3 * step), x4 = SET(4 * step),         \
    x5 = SET(5 * step), x6 = SET(6 * step), x7 = SET(7 * step), x8 = SET(8 * step), x9 = SET(9 * step),         \
    x10 = SET(10 * step), x11 = SET(11 * step)
#define PIG_SUM12(ADD) \
  ADD(ADD(ADD(ADD(x0, x1), ADD(x2, x3)), ADD(ADD(x4, x5), ADD(x6, x7))), ADD(ADD(x8, x9), ADD(x10, x11)))

__attribute__((target("avx512f"))) double fma_loop_avx512(int64_t iters, float* sink) {
  PIG_INIT12(__m512, _mm512_set1_ps, .1f);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    PIG_FMA12(_mm512_fmadd_ps, a, b);
    __asm__ volatile("" : "+v"(x0), "+v"(x1), "+v"(x2), "+v"(x3), "+v"(x4), "+v"(x5));
  }
  __m512 s = PIG_SUM12(_mm512_add_ps);
  float v[16];
  _mm512_storeu_ps(v, s);
  *sink = v[0] + v[15];
  return double(iters) * 12 * 16 * 2;
}

__attribute__((target("avx2,fma"))) double fma_loop_avx2(int64_t iters, float* sink) {
  PIG_INIT12(__m256, _mm256_set1_ps, .1f);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
    PIG_FMA12(_mm256_fmadd_ps, a, b);
    __asm__ volatile("" : "+x"(x0), "+x"(x1), "+x"(x2), "+x"(x3), "+x"(x4), "+x"(x5));
  }
  __m256 s = PIG_SUM12(_mm256_add_ps);
  float v[8];
  _mm256_storeu_ps(v, s);
  *sink = v[0] + v[7];
  return double(iters) * 12 * 8 * 2;
}
// vdpbf16ps x, a, b: x += a.even * b.even + a.odd * b.odd per fp32 lane (32 products per instruction).
__attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl"))) double dpbf16_loop_avx512(int64_t iters,
                                                                                        float* sink) {
  PIG_INIT12(__m512, _mm512_set1_ps, .1f);
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(1e-4f));
  for (int64_t it = 0; it < iters; ++it) {
    PIG_FMA12(_mm512_dpbf16_ps, a, b);
    __asm__ volatile("" : "+v"(x0), "+v"(x1), "+v"(x2), "+v"(x3), "+v"(x4), "+v"(x5));
  }
  __m512 s = PIG_SUM12(_mm512_add_ps);
  float v[16];
  _mm512_storeu_ps(v, s);
  *sink = v[0] + v[15];
  return double(iters) * 12 * 32 * 2;
}
// vpdpbusd x, a, b: x += Σ of four u8 · s8 products per int32 lane (64 multiply-adds, 128 ops per instruction).
__attribute__((target("avx512vnni,avx512f,avx512bw"))) double dpbusd_loop_avx512(int64_t iters, float* sink) {
  PIG_INIT12(__m512i, _mm512_set1_epi32, 1);
  const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (int64_t it = 0; it < iters; ++it) {
    PIG_FMA12(_mm512_dpbusd_epi32, a, b);
    __asm__ volatile("" : "+v"(x0), "+v"(x1), "+v"(x2), "+v"(x3), "+v"(x4), "+v"(x5));
  }
  __m512i s = PIG_SUM12(_mm512_add_epi32);
  int32_t v[16];
  _mm512_storeu_si512(v, s);
  *sink = float(v[0] + v[15]);
  return double(iters) * 12 * 64 * 2;
}

// vfmadd231ph: 32 fp16 lanes, 64 flop per instruction.
__attribute__((target("avx512fp16,avx512f,avx512bw,avx512vl"))) double fmaph_loop_avx512(int64_t iters, float* sink) {
  PIG_INIT12(__m512h, _mm512_set1_ph, .1f);
  const __m512h a = _mm512_set1_ph(0.999f), b = _mm512_set1_ph(1e-4f);
  for (int64_t it = 0; it < iters; ++it) {
    PIG_FMA12(_mm512_fmadd_ph, a, b);
    __asm__ volatile("" : "+v"(x0), "+v"(x1), "+v"(x2), "+v"(x3), "+v"(x4), "+v"(x5));
  }
  __m512h s = PIG_SUM12(_mm512_add_ph);
  _Float16 v[32];
  _mm512_storeu_ph(v, s);
  *sink = float(v[0]) + float(v[31]);
  return double(iters) * 12 * 32 * 2;
}
#undef PIG_FMA12
#undef PIG_INIT12
#undef PIG_SUM12

volatile float g_sink;  // keeps the loops' results observable

double thread_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// The best of `runs` rates of loop() on every OpenMP thread together, each thread timed on its own CPU clock.
double best_rate(int runs, double (*loop)(int64_t, float*)) {
  std::vector<double> rates;
  float sink = 0;
  for (int r = 0; r < std::max(runs, 1); ++r) {
    double rate = 0;
#pragma omp parallel reduction(+ : rate)
    {
      float s = 0;
      const double t0 = thread_cpu_seconds();
      const double flops = loop(4000000, &s);
      rate += flops / (thread_cpu_seconds() - t0);
#pragma omp atomic
      sink += s;
    }
    rates.push_back(rate);
  }
  g_sink = sink;
  return *std::max_element(rates.begin(), rates.end());
}

}  // namespace

FmaPeak measure_fma_peak(int runs) {
  FmaPeak p;
  // CPUID first, and within $PIGMENT_MAX_ISA (core/cpu_isa.h).
  const bool avx512 = cpu_has(Isa::Avx512);
  const bool avx2 = cpu_has(Isa::Avx2);
  p.isa = avx512 ? "avx512f" : avx2 ? "avx2+fma" : "none";
  p.threads = omp_get_max_threads();
  if (!avx512 && !avx2) return p;
  p.flops_per_s = best_rate(runs, avx512 ? fma_loop_avx512 : fma_loop_avx2);
  return p;
}

FmaPeak measure_bf16_peak(int runs) {
  FmaPeak p;
  const bool bf16 = cpu_has(Isa::Avx512Bf16);
  p.isa = bf16 ? "avx512_bf16" : "none";
  p.threads = omp_get_max_threads();
  if (bf16) p.flops_per_s = best_rate(runs, dpbf16_loop_avx512);
  return p;
}

FmaPeak measure_int8_peak(int runs) {
  FmaPeak p;
  const bool vnni = cpu_has(Isa::Avx512Vnni);
  p.isa = vnni ? "avx512_vnni" : "none";
  p.threads = omp_get_max_threads();
  if (vnni) p.flops_per_s = best_rate(runs, dpbusd_loop_avx512);
  return p;
}

FmaPeak measure_fp16_peak(int runs) {
  FmaPeak p;
  const bool fp16 = cpu_has(Isa::Avx512Fp16);
  p.isa = fp16 ? "avx512_fp16" : "none";
  p.threads = omp_get_max_threads();
  if (fp16) p.flops_per_s = best_rate(runs, fmaph_loop_avx512);
  return p;
}

}  // namespace pigment::bench
