// Precision::Int8 for linear() and conv2d(): 8-bit integer products with 32-bit integer sums (VNNI `vpdpbusd`, or AMX int8 tiles,
// through oneDNN), the rest of the model as Precision::Fast (bf16 products where the CPU has them, else float32), as
// are the products the model code runs under ops::without_int8() (the text encoders, cross-attention's keys and
// values, the UNet's resamplers: ops/precision.h).
//   weights: symmetric per output channel, s_w[n] = max_k |w[n, k]| / 127, q_w = round(w / s_w) in [-127, 127];
//            quantised once and kept (keyed like the bf16 copies: data pointer, shape, weak owner, fingerprint).
//   inputs:  symmetric per row (token), dynamic: s_x[m] = max_k |x[m, k]| / 127, no calibration.
//   output:  y[m, n] = float(Σ_k q_x[m, k] · q_w[n, k]) · (s_x[m] · s_w[n]) + b[n] (+ residual).
// Convolutions (conv2d below): weights per output channel as above (over C·kh·kw), inputs asymmetric with a dynamic
// scale and zero point per image (quantize_rows_asymmetric; a convolution mixes pixels, so per-token scales do not
// apply, and most of its inputs follow a SiLU, whose range is mostly positive: twice the levels of a symmetric
// scale), oneDNN's u8 × s8 → s32 direct convolution with the zero point removed (padding counts as real zero), the
// same dequantisation into NCHW float32.
// The integer sums are exact, so the kernels and their scalar twins (reference_linear, reference_conv2d) give the
// same bits. Taken only
// where oneDNN runs the product with VNNI or AMX (an AVX2 int8 kernel can saturate 16-bit partial sums), for K ≥ 64
// and no fused activation; anything else falls through to the next path. Error and speed: docs/performance.md.
#pragma once
#include <cstdint>
#include <vector>

#include "ops/ops.h"

namespace pigment::ops::int8 {

// Whether this CPU has an int8 product path (AVX-512 VNNI or AMX, within $PIGMENT_MAX_ISA) and it is enabled.
bool available();
// Turns the int8 path off (Int8 then computes exactly as Fast, as on a CPU without VNNI) or back on, so that tests run
// the fallback on any machine. Returns the previous setting.
bool set_enabled(bool on);
// Whether quantised weights (of weights with an owner) are kept for the next call (the default) or made per call and
// dropped (low-memory mode: pipelines/memory_mode.h; the copies kept so far are dropped on the next product).
// Returns the previous setting. kept_weights(): how many are kept.
bool set_keep_weights(bool on);
size_t kept_weights();
// y = linear(x, w, bias, opt) in int8 when Precision::Int8 is set and the path applies; false: not taken.
bool linear(const Tensor& x, const Tensor& w, const Tensor* bias, const LinearOptions& opt, Tensor& y);

// y = conv2d(x, w, bias, p, opt) in int8 when Precision::Int8 is set and the path applies (takes_conv, and oneDNN
// has a VNNI/AMX kernel for the shape); false: not taken.
bool conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p, const Conv2dOptions& opt,
            Tensor& y);
// Whether Precision::Int8 is set, its path available and a convolution of this shape is one it takes: at least 16
// input channels, more than 4 outputs (conv_in and the VAE's conv_out stay with the Fast path), a kernel larger than
// 1×1 and C·kh·kw ≥ 64. The 1×1 convolutions stay with Fast: in the UNet they are the residual blocks' shortcuts,
// whose error goes straight into the sum — in int8 they cost 1.6 dB of PSNR after 20 steps at 512² (34.7 against
// 36.3 dB) for ≈ 3 % of the step's work (docs/performance.md).
bool takes_conv(int64_t in_channels, int64_t out_channels, int64_t kernel_elements);

// The quantisation, for the scalar twins and tests.
struct Quantized {
  std::vector<int8_t> q;     // rows × K, row-major
  std::vector<float> scale;  // per row
};
Quantized quantize_rows(const float* x, int64_t rows, int64_t K);
// Asymmetric, unsigned (a convolution's inputs): per row lo = min(0, min x), hi = max(0, max x), s = (hi − lo) / 255
// (1 for an all-zero row), zero point z = clamp(round(−lo / s), 0, 255), q = clamp(round(x / s) + z, 0, 255); the
// value q stands for is (q − z)·s, so 0 stays exactly 0.
struct QuantizedAsymmetric {
  std::vector<uint8_t> q;
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
};
QuantizedAsymmetric quantize_rows_asymmetric(const float* x, int64_t rows, int64_t K);
// The scalar twin of linear() under Int8: the same quantisation, plain integer dot products, the same dequantisation.
Tensor reference_linear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor* residual = nullptr);
// The scalar twin of conv2d() under Int8 (zero padding, integer sums, the same dequantisation).
Tensor reference_conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p,
                        const Tensor* residual = nullptr);
// Drops w's quantised copy (a weight changed in place).
void forget(const Tensor& w);

}  // namespace pigment::ops::int8
