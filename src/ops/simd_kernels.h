// Single-threaded SIMD kernels behind the ops (Highway, dispatched at run time to the best target the CPU has:
// AVX-512, AVX2, SSE4, ...). The ops split work across threads and call these on their pieces. Every kernel's
// result depends only on its arguments, so splitting work differently never changes a bit.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pigment::ops::simd {

// The Highway target these kernels dispatch to ("AVX3_DL", "AVX2", ...), after $PIGMENT_MAX_ISA's cap.
const char* target_name();

// ---- elementwise ----
enum class Unary { Silu, Gelu, GeluTanh, QuickGelu };
void unary(Unary op, const float* x, float* y, size_t n);
// One row: x [2d] → y [d] = x[:d] · gelu(x[d:]).
void geglu(const float* x, float* y, size_t d);
enum class Binary { Add, Sub, Mul };
// y[i] = a[i·a_step] op b[i·b_step]: a step of 0 repeats one value, 1 walks a run.
void binary(Binary op, const float* a, size_t a_step, const float* b, size_t b_step, float* y, size_t n);
// y = a + s·b
void add_scaled(const float* a, const float* b, float s, float* y, size_t n);
void scale(const float* x, float s, float* y, size_t n);
// y[2i] = y[2i+1] = x[i], i < w
void upsample2x_row(const float* x, float* y, size_t w);
void f16_to_f32(const uint16_t* x, float* y, size_t n);
void bf16_to_f32(const uint16_t* x, float* y, size_t n);
// y[c][r] = x[r][c] for a rows × cols block (row strides ldx, ldy).
void transpose(const float* x, size_t ldx, float* y, size_t ldy, size_t rows, size_t cols);

// ---- normalisation ----
float sum(const float* x, size_t n);
float sum_sq_dev(const float* x, size_t n, float mean);
// y = (x - mean) · mul + add, then silu(y) when asked.
void normalize(const float* x, float* y, size_t n, float mean, float mul, float add, bool silu);
void layer_norm_row(const float* x, float* y, size_t d, const float* gamma, const float* beta, float eps);
void softmax_row(const float* x, float* y, size_t d);

// ---- convolution ----
// Output row `row` of a 3x3, stride-1, padding-1 convolution with O <= 4 output channels: x [C, H, W] (W a multiple
// of 16), wt [C][3][3][O] (f32), bias [O] or null; writes y[o, row, :] of y [O, H, W]. Sums run over c, then the
// kernel row, then the kernel column, one multiply-add each.
void conv3x3_narrow_row(const float* x, int64_t C, int64_t H, int64_t W, const float* wt, const float* bias, int O,
                        int64_t row, float* y);

// ---- attention ----
// One tile of flash attention for one head: queries rows [0, nq) at q (row stride ldq), keys/values rows [0, nk) at
// k/v (row stride ldkv), head size d; writes nq rows of d values at out (row stride ldo). With `causal`, query row i
// (absolute position q_pos + i) sees keys j <= q_pos + i only. Works in key blocks with an online softmax.
void attention_tile(const float* q, size_t ldq, size_t nq, const float* k, const float* v, size_t ldkv, size_t nk,
                    size_t d, float scale, bool causal, size_t q_pos, float* out, size_t ldo);

}  // namespace pigment::ops::simd
