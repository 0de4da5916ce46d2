// Scaled dot-product attention in tiles of queries with an online (running-max) softmax, so memory stays
// O(tile × Tk) per thread instead of O(Tq × Tk).
#include <cmath>
#include <vector>

#include "ops/ops.h"

namespace pigment::ops {

namespace {
Tensor attention_impl(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale, bool causal) {
  PIG_CHECK(q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3, "attention: expected [B, T, H*D] inputs");
  int64_t B = q.dim(0), Tq = q.dim(1), C = q.dim(2), Tk = k.dim(1);
  PIG_CHECK(k.dim(0) == B && v.dim(0) == B && k.dim(2) == C && v.dim(2) == C && v.dim(1) == Tk,
            "attention: q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()),
            " do not agree");
  PIG_CHECK(heads > 0 && C % heads == 0, "attention: ", C, " channels do not split into ", heads, " heads");
  int64_t D = C / heads;
  Tensor qf = q.as_f32(), kf = k.as_f32(), vf = v.as_f32();
  Tensor out = Tensor::empty(q.shape());
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

}  // namespace pigment::ops
