// Attention's two products in bf16 for Precision::Fast on CPUs with AVX-512 BF16 (`vdpbf16ps`: two bf16 products
// added into each fp32 lane), the softmax in fp32. Same tiling as simd::attention_tile (ops/simd_attention.cc):
// queries in vector lanes, keys in blocks of 64 with an online softmax; scores Sᵀ[key][query] = Σ k·q over pairs of
// head dimensions, outputs Oᵀ[e][query] += Σ v·p over pairs of keys. Inputs are rounded to bf16 (nearest even):
// queries (scaled first), keys, values, and the softmax weights before the value product; every sum is fp32.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pigment::ops::bf16_attention {

// Whether the kernel can run here (AVX-512 BF16 within $PIGMENT_MAX_ISA).
bool available();

// The fewest keys for which attention() takes this kernel under Fast: below, the fp32 kernel is as fast or faster,
// since preparing the queries costs as much as the products (ops_bench, AMD EPYC, bf16 against fp32: 77 keys 2.86
// against 1.62 ms, 256 keys 1.24 against 0.94 and 2.08 against 1.85, 512 keys 1.75 against 1.69 and 7.43 against
// 7.59, 1024 keys 6.18 against 6.52, 4096 keys 42.9 against 54.6). Tests lower it to run the kernel on small shapes;
// returns the previous value.
constexpr size_t kDefaultMinKeys = 1024;
size_t set_min_keys(size_t n);
size_t min_keys();

// Keys as bf16 rows ([nk][depth + depth % 2], pairs of head dimensions adjacent) and values as pairs of keys
// ([(nk + 1) / 2][depth] of two bf16 each, a last odd key paired with 0), made once per (batch, head). These and
// attention_tile throw where !available().
void pack_keys(const float* k, size_t ldk, size_t nk, size_t depth, uint16_t* out);
void pack_values(const float* v, size_t ldv, size_t nk, size_t depth, uint32_t* out);

// Non-causal attention of nq queries (row stride ldq, multiplied by scale) over nk packed keys and values; out rows
// ldo apart.
void attention_tile(const float* q, size_t ldq, size_t nq, const uint16_t* k16, const uint32_t* vt, size_t nk,
                    size_t depth, float scale, float* out, size_t ldo);

}  // namespace pigment::ops::bf16_attention
