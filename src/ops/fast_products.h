// Precision::Fast versions of linear() and conv2d() (see ops/precision.h); under Precision::Reference they run the
// scalar twins instead. Each returns false, leaving y alone, when the fast path does not apply (precision is Fp32, no
// fast path on this CPU, a shape it leaves to float32, or no bf16 kernel of the fast path's kind for the shape); the
// caller then runs its float32 path. Arguments are already checked by the caller.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include "ops/onednn.h"
#include "ops/ops.h"
#include "ops/precision.h"

namespace pigment::ops::fast {

bool linear(const Tensor& x, const Tensor& w, const Tensor* bias, const LinearOptions& opt, Tensor& y);
// fp32_winograd: whether the float32 path would run this convolution as Winograd (conv2d.cc's choice).
bool conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dParams& p, const Conv2dOptions& opt,
            bool fp32_winograd, Tensor& y);

// Whether Precision::Fast is set and its fast path takes a convolution of this shape (before asking oneDNN for a
// kernel): the shape rule of fast_products.cc. fp32_winograd as above.
bool takes_conv(int64_t in_channels, int64_t out_channels, int64_t out_pixels, bool fp32_winograd);

// ---- shared with the backward products (ops/fast_backward.cc) ----
// The fast path of this call: fast_path() under Precision::Fast, else None.
FastPath active_path();
// Whether oneDNN's implementation name ("brg:avx512_core_amx", "brgconv:avx512_core_bf16", ...) uses the path's
// instructions.
bool runs_on(FastPath path, const char* impl);
// w (f32, f16 or bf16; its memory laid out as `plain_f32` describes) as bf16 in the layout `want`, the same bits
// whichever way: for weights with an owner (keyed by data pointer, shape, dtype, layout, owner and a sampled
// fingerprint), kept from their second use within a memory phase on while the budget has room, else converted per
// call (one pass, into a per-thread scratch buffer that `hold` keeps until the primitive has run); views without an
// owner are converted per call. Room is made only by dropping kept weights that the current phase has not used and
// that were reused less within a phase (a text encoder's for a UNet's, never a UNet's for the next image's text
// encoder), so a model that visits its weights in a cycle keeps a fixed subset. A weight changed in place must be
// forgotten (forget_prepared in ops.h).
onednn::PreparedWeight prepared_bf16(const Tensor& w, const dnnl::memory::desc& plain_f32, const dnnl::memory::desc& want);
// Drops every bf16 form kept of w's memory.
void forget(const Tensor& w);
// Off: nothing is kept, every call converts its weights afresh (tests compare a run against this). Returns the
// previous setting.
bool set_keep_bf16_weights(bool on);
// bf16 weights kept, and their bytes (never more than the budget).
size_t kept_bf16_weights();
size_t kept_bf16_bytes();
// What the kept bf16 weights may hold (at most 2 GiB, all of SD1.5's UNet and text encoder; the pipeline fits it to
// the image size, pipelines/memory_mode.h; $PIGMENT_BF16_CACHE_MB megabytes when set); lowering it drops the least
// recently used. Process-wide. Measured (docs/performance.md): at 512² keeping 1.3 GB instead of all makes a step
// 6 % slower for 0.47 GB less peak RSS, at 256² 32 % slower.
void set_bf16_weight_budget(size_t bytes);
size_t bf16_weight_budget();
// The same, but $PIGMENT_BF16_CACHE_MB wins when set (a caller's own default: the trainer's).
void set_default_bf16_weight_budget(size_t bytes);
// A budget fitted to the work at hand (the pipeline's, from the image size: pipelines/memory_mode.h), clamped to
// [1 byte, the default]; only while no budget was chosen ($PIGMENT_BF16_CACHE_MB or the two setters above). Returns
// whether it applied.
bool fit_bf16_weight_budget(size_t bytes);
// Back to the state at start: the default budget, chosen only if $PIGMENT_BF16_CACHE_MB is set.
void reset_bf16_weight_budget();
// A new memory phase (text encoding, sampling, decoding: pipelines/memory_mode.cc): uses are counted per phase.
void new_weight_phase();
// Rounds n floats to bf16 (nearest even), vectorised.
void to_bf16(const float* src, uint16_t* dst, size_t n);

}  // namespace pigment::ops::fast
