#include "ops/autograd.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace pigment::ops
