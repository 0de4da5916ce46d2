#include <gtest/gtest.h>

#include <cmath>

#include "ops/backward.h"
#include "ops/grad_check_test_util.h"

namespace pigment::ops {
namespace {
using testing::Doubles;
using testing::doubles;
using testing::grad_close;
using testing::numeric_grad;
using testing::randn;
using testing::rel_err;
using testing::same_bits_at;

struct AttnCase {
  int64_t B, Tq, Tk, heads, D;
};

// Attention in double: per head softmax(q kᵀ · scale) v, with CLIP's causal mask (query i sees keys j <= i).
Doubles attention_d(const Doubles& q, const Doubles& k, const Doubles& v, const AttnCase& c, double scale,
                    bool causal) {
  const int64_t C = c.heads * c.D;
  Doubles out(size_t(c.B * c.Tq * C), 0.0), s(size_t(c.Tk));
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.heads; ++h)
      for (int64_t i = 0; i < c.Tq; ++i) {
        const int64_t limit = causal ? std::min(c.Tk, i + 1) : c.Tk;
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < limit; ++j) {
          double d = 0;
          for (int64_t e = 0; e < c.D; ++e)
            d += q[size_t((b * c.Tq + i) * C + h * c.D + e)] * k[size_t((b * c.Tk + j) * C + h * c.D + e)];
          s[size_t(j)] = d * scale;
          m = std::max(m, s[size_t(j)]);
        }
        for (int64_t j = 0; j < limit; ++j) sum += s[size_t(j)] = std::exp(s[size_t(j)] - m);
        for (int64_t j = 0; j < limit; ++j)
          for (int64_t e = 0; e < c.D; ++e)
            out[size_t((b * c.Tq + i) * C + h * c.D + e)] +=
                s[size_t(j)] / sum * v[size_t((b * c.Tk + j) * C + h * c.D + e)];
      }
  return out;
}

Tensor attention_f(const Tensor& q, const Tensor& k, const Tensor& v, int heads, float scale, bool causal) {
  return causal ? ref::attention_causal(q, k, v, heads, scale) : ref::attention(q, k, v, heads, scale);
}

TEST(AttentionBackward, ReferenceMatchesFiniteDifferences) {
  const AttnCase cases[] = {{1, 3, 4, 2, 5}, {2, 4, 4, 2, 5}, {1, 3, 5, 1, 3}, {1, 5, 2, 2, 5}};
  uint32_t seed = 1;
  for (const auto& c : cases)
    for (bool causal : {false, true}) {
      const int64_t C = c.heads * c.D;
      const float scale = 1.f / std::sqrt(float(c.D));
      Tensor q = randn({c.B, c.Tq, C}, seed++), k = randn({c.B, c.Tk, C}, seed++), v = randn({c.B, c.Tk, C}, seed++);
      Tensor r = randn({c.B, c.Tq, C}, seed++);
      const Doubles Q = doubles(q), K = doubles(k), V = doubles(v), R = doubles(r);
      AttentionGrads g =
          ref::attention_backward(r, q, k, v, attention_f(q, k, v, int(c.heads), scale, causal), int(c.heads), scale,
                                  causal);
      const std::string what = std::to_string(c.Tq) + "x" + std::to_string(c.Tk) + " heads " +
                               std::to_string(c.heads) + " D " + std::to_string(c.D) + (causal ? " causal" : "");
      EXPECT_TRUE(grad_close(g.dq, numeric_grad([&](const Doubles& x) { return attention_d(x, K, V, c, scale, causal); }, Q, R)))
          << "dq " << what;
      EXPECT_TRUE(grad_close(g.dk, numeric_grad([&](const Doubles& x) { return attention_d(Q, x, V, c, scale, causal); }, K, R)))
          << "dk " << what;
      EXPECT_TRUE(grad_close(g.dv, numeric_grad([&](const Doubles& x) { return attention_d(Q, K, x, c, scale, causal); }, V, R)))
          << "dv " << what;
    }
}

TEST(AttentionBackward, FastMatchesReference) {
  const AttnCase cases[] = {{1, 1, 1, 1, 1},    {2, 77, 77, 2, 20},  {1, 130, 77, 8, 40}, {1, 65, 200, 1, 3},
                            {1, 100, 64, 2, 80}, {3, 5, 129, 3, 17},  {1, 300, 300, 2, 40}, {4, 64, 64, 8, 8},
                            {1, 10, 77, 2, 16},  {1, 200, 50, 1, 24}};
  uint32_t seed = 100;
  for (const auto& c : cases)
    for (bool causal : {false, true}) {
      const int64_t C = c.heads * c.D;
      const float scale = 1.f / std::sqrt(float(c.D));
      Tensor q = randn({c.B, c.Tq, C}, seed++, 1.5f), k = randn({c.B, c.Tk, C}, seed++, 1.5f);
      Tensor v = randn({c.B, c.Tk, C}, seed++), dout = randn({c.B, c.Tq, C}, seed++);
      Tensor out = attention_f(q, k, v, int(c.heads), scale, causal);
      AttentionGrads want = ref::attention_backward(dout, q, k, v, out, int(c.heads), scale, causal);
      AttentionGrads got = attention_backward(dout, q, k, v, out, int(c.heads), scale, causal);
      const std::string what = std::to_string(c.B) + "x" + std::to_string(c.Tq) + "x" + std::to_string(c.Tk) +
                               " heads " + std::to_string(c.heads) + " D " + std::to_string(c.D) +
                               (causal ? " causal" : "");
      EXPECT_LT(rel_err(got.dq, want.dq), 2e-5) << "dq " << what;
      EXPECT_LT(rel_err(got.dk, want.dk), 2e-5) << "dk " << what;
      EXPECT_LT(rel_err(got.dv, want.dv), 2e-5) << "dv " << what;
    }
}

TEST(AttentionBackward, SameBitsAtAnyThreadCount) {
  // 2 x 2 heads: each head's query tiles split over several tasks, whose dK/dV are added in a fixed order.
  Tensor q = randn({2, 300, 80}, 200), k = randn({2, 300, 80}, 201), v = randn({2, 300, 80}, 202);
  Tensor dout = randn({2, 300, 80}, 203);
  for (bool causal : {false, true}) {
    Tensor out = attention_f(q, k, v, 2, 0.15f, causal);
    EXPECT_TRUE(same_bits_at([&] { return attention_backward(dout, q, k, v, out, 2, 0.15f, causal).dq; }));
    EXPECT_TRUE(same_bits_at([&] { return attention_backward(dout, q, k, v, out, 2, 0.15f, causal).dk; }));
    EXPECT_TRUE(same_bits_at([&] { return attention_backward(dout, q, k, v, out, 2, 0.15f, causal).dv; }));
  }
}

TEST(AttentionBackward, BadShapesThrow) {
  Tensor a = Tensor::zeros({1, 4, 6});
  EXPECT_THROW(attention_backward(a, a, a, Tensor::zeros({1, 5, 6}), a, 2, 1.f, false), Error);
  EXPECT_THROW(attention_backward(a, a, a, a, a, 4, 1.f, false), Error);
  EXPECT_THROW(attention_backward(Tensor::zeros({1, 3, 6}), a, a, a, a, 2, 1.f, false), Error);
}

}  // namespace
}  // namespace pigment::ops
