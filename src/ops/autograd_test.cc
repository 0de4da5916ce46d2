#include "ops/autograd.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "ops/ops_test_util.h"

namespace pigment::ops {
namespace {

using autograd::Recording;
using autograd::Tape;
using testing::randn;

// f(x, w, b) = Σ r ⊙ silu(linear(x, w, b) + x·2) reshaped and permuted on the way: several ops, a broadcast, a
// fan-out (x used twice).
float f(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& r, Tensor* y_out = nullptr) {
  Tensor h = linear(x, w, &b);
  h = add(h, scale(x, 2.f));
  h = silu(h).reshape({3, 2, 4});
  h = permute(h, {1, 0, 2});
  if (y_out) *y_out = h;
  return sum_all(mul(h, r));
}

TEST(Autograd, GradientsOfAComposedFunctionMatchFiniteDifferences) {
  Tensor x = randn({6, 4}, 1), w = randn({4, 4}, 2, 0.5f), b = randn({4}, 3), r = randn({2, 3, 4}, 4);
  Tape tape;
  tape.watch(w);
  tape.watch(b);
  Tensor xin = tape.input(x);
  Tensor y;
  {
    Recording rec(tape);
    f(xin, w, b, r, &y);
  }
  tape.backward(y, r);  // d Σ r⊙y / dy = r
  Tensor gw = tape.gradient(w), gb = tape.gradient(b), gx = tape.gradient(xin);
  ASSERT_TRUE(gw.defined() && gb.defined() && gx.defined());
  for (Tensor* p : {&x, &w, &b}) {
    Tensor g = p == &x ? gx : p == &w ? gw : gb;
    for (int64_t i = 0; i < p->numel(); ++i) {
      const float keep = p->f32()[i], h = 1e-2f;
      p->f32()[i] = keep + h;
      const double up = f(x, w, b, r);
      p->f32()[i] = keep - h;
      const double down = f(x, w, b, r);
      p->f32()[i] = keep;
      EXPECT_NEAR(g.f32()[i], (up - down) / (2 * h), 2e-3 + 2e-3 * std::fabs(g.f32()[i])) << i;
    }
  }
}

TEST(Autograd, FrozenInputsAreNotRecorded) {
  Tensor x = randn({2, 4}, 1), w = randn({4, 4}, 2);
  Tape tape;
  {
    Recording rec(tape);
    Tensor y = silu(linear(x, w));
    EXPECT_FALSE(autograd::needs_grad(y));
  }
  EXPECT_EQ(tape.size(), 0u);
}

TEST(Autograd, InPlaceAdditionIsRecordedAsANewValue) {
  Tensor a = randn({5}, 1), b = randn({5}, 2);
  Tape tape;
  Tensor ai = tape.input(a), bi = tape.input(b);
  Tensor y;
  {
    Recording rec(tape);
    y = scale(ai, 3.f);
    add_inplace(y, bi);  // y = 3a + b
    y = mul(y, y);       // (3a + b)²
  }
  tape.backward(y, Tensor::full({5}, 1.f));
  for (int i = 0; i < 5; ++i) {
    const float s = 3 * a.f32()[i] + b.f32()[i];
    EXPECT_NEAR(tape.gradient(ai).f32()[i], 6 * s, 1e-5f * (1 + std::fabs(6 * s)));
    EXPECT_NEAR(tape.gradient(bi).f32()[i], 2 * s, 1e-5f * (1 + std::fabs(2 * s)));
  }
}

TEST(Autograd, ParameterGradientsAccumulateUntilZeroed) {
  Tensor x = randn({3, 2}, 1), w = randn({2, 2}, 2);
  Tape tape;
  tape.watch(w);
  auto once = [&] {
    Tensor y;
    {
      Recording rec(tape);
      y = linear(x, w);
    }
    tape.backward(y, Tensor::full({3, 2}, 1.f));
    tape.clear();
  };
  once();
  Tensor g1 = tape.gradient(w).clone();
  once();
  Tensor g2 = tape.gradient(w);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(g2.f32()[i], 2 * g1.f32()[i]);
  tape.zero_grad();
  EXPECT_FALSE(tape.gradient(w).defined());
}

TEST(Autograd, BackwardFromAValueNoTrainedInputReachesIsAnError) {
  Tape tape;
  Tensor y = randn({2}, 1);
  EXPECT_THROW(tape.backward(y, y), Error);
}

// A loss of two terms taken from values recorded at different points (the VAE's reconstruction + KL): one backward
// from both gives the sum of the two single-root gradients. Uses the clamp/exp maps, recorded like the other ops.
TEST(Autograd, SeveralRootsSumTheirGradients) {
  const Tensor x = randn({8}, 1, 2.f), dz = randn({8}, 2), dk = randn({8}, 3);
  // logvar = clamp(x, -1, 1); z = exp(0.5·logvar) (an early value) and k = exp(logvar)·3 (a later one).
  auto run = [&](bool z_root, bool k_root) {
    Tape tape;
    Tensor xi = tape.input(x), z, k;
    {
      Recording rec(tape);
      Tensor lv = clamp(xi, -1.f, 1.f);
      z = exp(scale(lv, 0.5f));
      k = scale(exp(lv), 3.f);
      EXPECT_TRUE(autograd::needs_grad(z) && autograd::needs_grad(k));
    }
    std::vector<Tensor> ys, dys;
    if (z_root) ys.push_back(z), dys.push_back(dz);
    if (k_root) ys.push_back(k), dys.push_back(dk);
    tape.backward(ys, dys);
    return tape.gradient(xi).to_vector();
  };
  const auto both = run(true, true), only_z = run(true, false), only_k = run(false, true);
  for (int i = 0; i < 8; ++i) {
    const double v = x.f32()[i];
    const bool inside = v >= -1 && v <= 1;
    const double lv = std::clamp(v, -1.0, 1.0);
    const double expect = inside ? dz.f32()[i] * 0.5 * std::exp(0.5 * lv) + dk.f32()[i] * 3 * std::exp(lv) : 0;
    EXPECT_NEAR(both[size_t(i)], expect, 1e-5 * (1 + std::fabs(expect))) << i;
    EXPECT_NEAR(both[size_t(i)], only_z[size_t(i)] + only_k[size_t(i)], 1e-6) << i;
  }
  Tape tape;
  EXPECT_THROW(tape.backward(std::vector<Tensor>{}, std::vector<Tensor>{}), Error);
}

TEST(Autograd, ReluIsRecorded) {
  const Tensor x = Tensor::from_vector({4}, {-2.f, -0.5f, 0.5f, 3.f});
  Tape tape;
  Tensor xi = tape.input(x), y;
  {
    Recording rec(tape);
    y = relu(scale(xi, 2.f));
  }
  tape.backward(y, Tensor::full({4}, 1.f));
  EXPECT_EQ(tape.gradient(xi).to_vector(), (std::vector<float>{0, 0, 2, 2}));
}

}  // namespace
}  // namespace pigment::ops
