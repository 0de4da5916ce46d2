// The op set. Every model, sampler, pipeline and trainer computes with these and nothing else.
// Inputs are contiguous tensors; activations are float32. Weight arguments may be f32, f16 or bf16 (converted
// as the kernel needs). Shapes follow PyTorch: NCHW images, [..., features] sequences.
//
// These are the fast kernels (oneDNN for products and convolutions, Highway SIMD with run-time dispatch and OpenMP for
// the rest). Each one has a plain scalar twin with the same signature in ops/reference.h (pigment::ops::ref), the
// oracle the fast one is tested against. Results are deterministic: the same bits whatever the thread count.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace pigment::ops {

// ---- prepared weights ----
// linear() and conv2d() need their weight in float32, reordered into the blocked layout the kernel wants. A
// WeightCache decides where that prepared form lives:
// - Weights whose layout is a plain blocking of the weight (direct convolutions, matmul packing) and that are not
//   tiny are converted per call, in one pass (f16/bf16 → f32 → blocked, ≈ memory speed), into a per-thread scratch
//   buffer. Only a use count is remembered. From their second use on, such a weight is kept if the budget has room;
//   room is never made for it by evicting another, so a model that visits its weights in a cycle (a UNet, step
//   after step) keeps a fixed subset instead of thrashing.
// - Other layouts (Winograd's transformed weights, whose transform costs ~100x the conversion) and tiny weights are
//   always kept; beyond the budget the cheap-to-convert kept ones are dropped first, then the least recently used.
// Either way the bits are the same. Entries are keyed by the weight's data pointer, shape, dtype and layout, with a
// weak reference to the weight's memory: when the model that owns the weight is freed, its entries die with it
// (they are swept on the next insertion, or by clear()), and a reused address never finds a stale entry. A weight
// changed in place (an optimizer step, a LoRA merged into it) must be dropped with forget() or clear(); a sampled
// fingerprint of the weight catches most such changes, but it is a safety net, not a guarantee. Weights whose
// memory has no owner (views without one) are prepared on every call and never cached. Thread-safe.
// Weights read from a memory-mapped checkpoint give their file pages back (core/file_pages.h) once kept in prepared
// form, and after every use when set_release_weight_pages(true) (low-memory mode): the resident set then holds no
// copy of the file.
class WeightCache {
 public:
  // budget_bytes 0: 1.25 GiB (or $PIGMENT_WEIGHT_CACHE_MB megabytes when set).
  explicit WeightCache(size_t budget_bytes = 0);
  ~WeightCache();
  WeightCache(const WeightCache&) = delete;
  WeightCache& operator=(const WeightCache&) = delete;

  void clear();
  // Drops every entry prepared from w's memory.
  void forget(const Tensor& w);
  void set_budget(size_t bytes);
  // Drops the kept weights that are cheap to prepare again (those converted per call when not kept); they are kept
  // again from their second use after this call. For phase changes: a pipeline's text encoders, then its UNet.
  void release_streamable();
  size_t budget() const;
  // Bytes held by kept prepared weights, and how many there are.
  size_t bytes() const;
  size_t entries() const;

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};
// A WeightCache's budget when none is named: 1.25 GiB, or $PIGMENT_WEIGHT_CACHE_MB megabytes when set.
size_t default_weight_cache_budget();
// The cache used when a call names none. A model may own its own WeightCache instead (and pass it in the options
// below) so that its prepared weights are accounted for and freed with it.
WeightCache& default_weight_cache();
// Drops every prepared form of w's memory: default_weight_cache()'s and Precision::Fast's bf16 copies. For a weight
// changed in place (an optimizer step).
void forget_prepared(const Tensor& w);
// Process-wide: drop the file pages of a memory-mapped weight after every use, not only once it is kept.
void set_release_weight_pages(bool on);
bool release_weight_pages();
// Frees the calling thread's work buffers (oneDNN scratchpad, weight conversion scratch): they only grow, to the
// largest call seen (a Winograd convolution at 512x512 needs hundreds of MB), so phases of a pipeline end with this.
void release_work_memory();

// Activations that the products can apply to their result before it is stored (no extra pass over memory).
enum class Activation { None, Silu, Gelu, GeluTanh, QuickGelu };

// ---- products ----
// y[..., out] = x[..., in] · w[out, in]ᵀ + b[out]   (PyTorch nn.Linear)
Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias = nullptr);
struct LinearOptions {
  Activation activation = Activation::None;  // y = act(x·wᵀ + b) ...
  const Tensor* residual = nullptr;          // ... + residual (same shape as y)
  WeightCache* cache = nullptr;              // nullptr: default_weight_cache()
};
Tensor linear(const Tensor& x, const Tensor& w, const Tensor* bias, const LinearOptions& options);
// Batched matrix product: a [B, M, K] (or [M, K]) times b [B, K, N] (or [K, N], shared by the batch).
// trans_a / trans_b read a as [B, K, M] / b as [B, N, K].
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

struct Conv2dParams {
  int stride = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  static Conv2dParams same(int pad, int stride = 1) { return {stride, pad, pad, pad, pad}; }
};
// x [N, C, H, W], w [O, C, kh, kw], bias [O] → [N, O, H', W']
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, Conv2dParams p);
// Auto: Winograd (oneDNN's F(4,3) / F(2,3)) for 3x3 stride-1 padding-1 convolutions with at least 16 input and
// output channels and at least 32x32 output pixels (2.2x faster there, error ~1e-5 of the output scale; its prepared
// weights take 4x the memory of plain ones), direct otherwise (docs/performance.md has the measurements). The choice
// depends only on the shape, never on timing, so results are reproducible. Winograd asks for it wherever it applies.
enum class ConvAlgorithm { Auto, Direct, Winograd };
struct Conv2dOptions {
  const Tensor* residual = nullptr;  // y = conv + bias + residual, residual [N, O, H', W']
  ConvAlgorithm algorithm = ConvAlgorithm::Auto;  // Winograd falls back to direct where oneDNN has no kernel
  WeightCache* cache = nullptr;                  // nullptr: default_weight_cache()
};
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, Conv2dParams p, const Conv2dOptions& options);
// The algorithm used when options say Auto (process-wide; Direct saves the Winograd weight memory).
void set_default_conv_algorithm(ConvAlgorithm a);
ConvAlgorithm default_conv_algorithm();

// ---- normalisation ----
// x [N, C, ...]; statistics per (n, group); gamma/beta [C].
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps);
// silu(group_norm(x)) in one pass over the output.
Tensor group_norm_silu(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps);
// Normalises over the last dimension; gamma/beta [last].
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps);
// Softmax over the last dimension.
Tensor softmax(const Tensor& x);

// ---- attention ----
// q [B, Tq, H*D], k/v [B, Tk, H*D] → [B, Tq, H*D]: per head softmax(q kᵀ · scale) v.
// Computed in tiles of queries with an online softmax: never a full Tq × Tk matrix.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale);
// The same, with an additive mask [Tq, Tk] (use -inf to block), e.g. CLIP's causal mask.
Tensor attention_causal(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale);

// ---- activations (elementwise) ----
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);       // erf form
Tensor gelu_tanh(const Tensor& x);  // tanh approximation
Tensor quick_gelu(const Tensor& x);  // x·σ(1.702x)
// x [..., 2N] → [..., N]: first half · gelu(second half)  (diffusers GEGLU after its projection)
Tensor geglu(const Tensor& x);
// Plain maps, so that model code that used raw loops is visible to the autograd tape: max(x, 0) (A1111 hypernetwork
// activation), min(max(x, lo), hi) (the VAE posterior's logvar clamp) and e^x (its std and variance), each element by
// the <cmath> function, so inference keeps the bits of the loops they replace.
Tensor relu(const Tensor& x);
Tensor clamp(const Tensor& x, float lo, float hi);
Tensor exp(const Tensor& x);
// The other element-wise activations of torch.nn that A1111 hypernetworks offer, as PyTorch defines them:
// LeakyReLU (slope 0.01), ELU (α 1), Hardswish (x·relu6(x + 3)/6; A1111's "swish"), Tanh, Sigmoid, Softsign
// (x/(1 + |x|)) and Mish (x·tanh(softplus(x)), softplus linear above 20 as torch's).
enum class Pointwise { LeakyRelu, Elu, HardSwish, Tanh, Sigmoid, Softsign, Mish };
Tensor pointwise(const Tensor& x, Pointwise f);
// One element of pointwise() and of its derivative times g: the scalar definitions every path uses.
float pointwise_value(float v, Pointwise f);
float pointwise_grad(float g, float v, Pointwise f);

// ---- shape and resampling ----
Tensor upsample_nearest2x(const Tensor& x);     // [N, C, H, W] → [N, C, 2H, 2W]
Tensor avg_pool2x(const Tensor& x);             // [N, C, H, W] → [N, C, H/2, W/2]
Tensor concat(const std::vector<Tensor>& xs, int dim);
Tensor slice(const Tensor& x, int dim, int64_t begin, int64_t end);
std::vector<Tensor> chunk(const Tensor& x, int chunks, int dim);
Tensor permute(const Tensor& x, const std::vector<int>& perm);
// NCHW [N, C, H, W] ↔ sequence [N, H*W, C]
Tensor nchw_to_nlc(const Tensor& x);
Tensor nlc_to_nchw(const Tensor& x, int64_t h, int64_t w);

// ---- arithmetic with NumPy broadcasting ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float s);
Tensor add_scaled(const Tensor& a, const Tensor& b, float sb);  // a + sb·b, same shapes
void add_inplace(Tensor& a, const Tensor& b);                    // a += b, same shapes

// ---- lookups and embeddings ----
// table [V, D] (any float dtype), ids → [ids.size(), D]; ids out of range throw.
Tensor embedding(const Tensor& table, const std::vector<int64_t>& ids);
// x [..., D] with rows `at` (indices into the [rows, D] view of x) replaced by rows [at.size(), D]: token embeddings
// of added words (textual inversion) overwrite their positions.
Tensor replace_rows(const Tensor& x, const std::vector<int64_t>& at, const Tensor& rows);
// Sinusoidal timestep embedding as diffusers' get_timestep_embedding → [len(t), dim].
Tensor timestep_embedding(const std::vector<float>& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift,
                          float max_period = 10000.f);

// ---- reductions and losses ----
float sum_all(const Tensor& x);
float mean_all(const Tensor& x);
float mse(const Tensor& a, const Tensor& b);

}  // namespace pigment::ops
