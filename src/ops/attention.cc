// Scaled dot-product attention. ref::: one query at a time, full row of scores, double-precision denominator.
// Fast: flash-attention tiles (simd::attention_tile) of 64 queries for one (batch, head), in parallel over tiles; keys
// are visited in blocks with an online softmax, so memory is O(tile × (block + head size)) per thread. Under
// Precision::Fast on AVX-512 BF16 the two products run in bf16 (ops/attention_bf16.h).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ops/attention_bf16.h"
#include "ops/autograd_ops.h"
#include "ops/precision.h"
#include "ops/profile.h"
#include "ops/reference.h"
#include "ops/simd_kernels.h"

namespace pigment::ops {

namespace {
struct AttnShape {
  int64_t B, Tq, C, Tk, D;
};
AttnShape check_attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads) {
  PIG_CHECK(q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3, "attention: expected [B, T, H*D] inputs, got q ",
            shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
  int64_t B = q.dim(0), Tq = q.dim(1), C = q.dim(2), Tk = k.dim(1);
  PIG_CHECK(k.dim(0) == B && v.dim(0) == B && k.dim(2) == C && v.dim(2) == C && v.dim(1) == Tk, "attention: q ",
            shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()), " do not agree");
  PIG_CHECK(heads > 0 && C % heads == 0, "attention: ", C, " channels do not split into ", heads, " heads");
  return {B, Tq, C, Tk, C / heads};
}
}  // namespace

namespace ref {
namespace {
Tensor attention_impl(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale, bool causal) {
  const AttnShape sh = check_attention(q, k, v, heads);
  const int64_t B = sh.B, Tq = sh.Tq, C = sh.C, Tk = sh.Tk, D = sh.D;
  Tensor qf = q.as_f32(), kf = k.as_f32(), vf = v.as_f32();
  Tensor out = Tensor::zeros(q.shape());
#pragma omp parallel
  {
    std::vector<float> s(Tk);
#pragma omp for collapse(3) schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < Tq; ++i) {
          const float* qi = qf.f32() + (b * Tq + i) * C + h * D;
          int64_t limit = causal ? std::min(Tk, i + 1) : Tk;
          float m = -INFINITY;
          for (int64_t j = 0; j < limit; ++j) {
            const float* kj = kf.f32() + (b * Tk + j) * C + h * D;
            float d = 0;
            for (int64_t e = 0; e < D; ++e) d += qi[e] * kj[e];
            s[j] = d * scale;
            m = std::max(m, s[j]);
          }
          double sum = 0;
          for (int64_t j = 0; j < limit; ++j) sum += s[j] = std::exp(s[j] - m);
          float inv = float(1.0 / sum);
          float* o = out.f32() + (b * Tq + i) * C + h * D;
          for (int64_t e = 0; e < D; ++e) o[e] = 0;
          for (int64_t j = 0; j < limit; ++j) {
            const float* vj = vf.f32() + (b * Tk + j) * C + h * D;
            float p = s[j] * inv;
            for (int64_t e = 0; e < D; ++e) o[e] += p * vj[e];
          }
        }
  }
  return out;
}
}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale) {
  return attention_impl(q, k, v, heads, scale, false);
}
Tensor attention_causal(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale) {
  return attention_impl(q, k, v, heads, scale, true);
}
}  // namespace ref

namespace {
constexpr int64_t kQueryTile = 256;  // queries per task: each block of keys and values is read once for all of them

// $PIGMENT_FP32_ATTENTION=1 keeps attention in fp32 under Fast (for A/B measurements).
bool fast_attention_enabled() {
  static const bool on = std::getenv("PIGMENT_FP32_ATTENTION") == nullptr;
  return on;
}

// Precision::Fast (and Int8, whose other products run as Fast) on a CPU with AVX-512 BF16 and the fast path on
// (ops::set_fast_path_enabled), with enough keys for the bf16 kernel to win (bf16_attention::min_keys()): the two
// products in bf16 (ops/attention_bf16.h); causal attention (the text encoders) stays fp32.
bool attention_in_bf16(bool causal, int64_t keys) {
  const Precision p = precision();
  return !causal && (p == Precision::Fast || p == Precision::Int8) && fast_precision_available() &&
         bf16_attention::available() && fast_attention_enabled() && size_t(keys) >= bf16_attention::min_keys();
}

Tensor attention_fast(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale, bool causal) {
  const AttnShape sh = check_attention(q, k, v, heads);
  const int64_t B = sh.B, Tq = sh.Tq, C = sh.C, Tk = sh.Tk, D = sh.D;
  const bool use_bf16 = attention_in_bf16(causal, Tk);
  profile::Scope prof(
      [&] {
        const char* name = causal ? "attention causal" : use_bf16 ? "attention bf16" : "attention";
        return std::string(name) + " " + std::to_string(Tq) + "x" + std::to_string(Tk) + " " + std::to_string(heads) +
               "x" + std::to_string(D) + " B" + std::to_string(B);
      },
      4.0 * double(B * Tq) * double(Tk) * double(C));
  Tensor out = Tensor::zeros(q.shape());
  if (Tk == 0 || D == 0) return out;  // no keys: nothing to attend to (as the reference: zeros)
  Tensor qf = q.as_f32(), kf = k.as_f32(), vf = v.as_f32();
  const int64_t tiles = (Tq + kQueryTile - 1) / kQueryTile, tasks = B * heads * tiles;
  const float *Q = qf.f32(), *K = kf.f32(), *V = vf.f32();
  float* O = out.f32();
  const bool par = tasks > 1 && B * Tq * Tk * D > 65536;
  auto kv_offset = [&](int64_t bh) { return bh / heads * Tk * C + bh % heads * D; };  // of (batch, head) bh
  // bf16: keys and values packed once per (batch, head), then shared by that head's query tiles.
  const size_t dp = size_t(D + D % 2), nk2 = size_t(Tk + 1) / 2;
  std::vector<uint16_t> k16;
  std::vector<uint32_t> vt;
  if (use_bf16) {
    k16.resize(size_t(B * heads * Tk) * dp);
    vt.resize(size_t(B * heads * D) * nk2);
#pragma omp parallel for schedule(static) if (par)
    for (int64_t bh = 0; bh < B * heads; ++bh) {
      const int64_t off = kv_offset(bh);
      bf16_attention::pack_keys(K + off, size_t(C), size_t(Tk), size_t(D), k16.data() + size_t(bh * Tk) * dp);
      bf16_attention::pack_values(V + off, size_t(C), size_t(Tk), size_t(D), vt.data() + size_t(bh * D) * nk2);
    }
  }
#pragma omp parallel for schedule(dynamic, 1) if (par)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t bh = t / tiles, i0 = (t % tiles) * kQueryTile, nq = std::min(kQueryTile, Tq - i0);
    const int64_t off_q = (bh / heads * Tq + i0) * C + bh % heads * D, off_kv = kv_offset(bh);
    if (use_bf16)
      bf16_attention::attention_tile(Q + off_q, size_t(C), size_t(nq), k16.data() + size_t(bh * Tk) * dp,
                                     vt.data() + size_t(bh * D) * nk2, size_t(Tk), size_t(D), scale, O + off_q,
                                     size_t(C));
    else
      simd::attention_tile(Q + off_q, size_t(C), size_t(nq), K + off_kv, V + off_kv, size_t(C), size_t(Tk), size_t(D),
                           scale, causal, size_t(i0), O + off_q, size_t(C));
  }
  return out;
}
}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale) {
  if (autograd::any_needs_grad({&q, &k, &v})) return recorded::attention(q, k, v, heads, scale, false);
  if (precision() == Precision::Reference) return ref::attention(q, k, v, heads, scale);
  return attention_fast(q, k, v, heads, scale, false);
}
Tensor attention_causal(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale) {
  if (autograd::any_needs_grad({&q, &k, &v})) return recorded::attention(q, k, v, heads, scale, true);
  if (precision() == Precision::Reference) return ref::attention_causal(q, k, v, heads, scale);
  return attention_fast(q, k, v, heads, scale, true);
}

}  // namespace pigment::ops
