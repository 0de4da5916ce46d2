// Precision::Reference: every product, normalisation and attention runs its scalar twin (the benchmarks' baseline),
// so its results are exactly ops::ref's.
#include <gtest/gtest.h>

#include "ops/ops.h"
#include "ops/ops_test_util.h"
#include "ops/precision.h"
#include "ops/reference.h"

namespace pigment::ops {
namespace {
using testing::randn;
using testing::same_bits;

TEST(ReferencePrecision, ParsesItsName) {
  EXPECT_EQ(parse_precision("reference"), Precision::Reference);
  EXPECT_STREQ(precision_name(Precision::Reference), "reference");
}

TEST(ReferencePrecision, OpsRunTheirScalarTwins) {
  const Tensor x = randn({2, 77, 64}, 1), w = randn({96, 64}, 2, 0.1f), b = randn({96}, 3), r = randn({2, 77, 96}, 4);
  const Tensor img = randn({2, 32, 9, 9}, 5), cw = randn({16, 32, 3, 3}, 6, 0.05f), cb = randn({16}, 7);
  const Tensor cr = randn({2, 16, 9, 9}, 8), g = randn({32}, 9), beta = randn({32}, 10);
  const Tensor q = randn({2, 50, 64}, 11), k = randn({2, 20, 64}, 12), v = randn({2, 20, 64}, 13);
  const Tensor gl = randn({64}, 14), bl = randn({64}, 15);
  ScopedPrecision p(Precision::Reference);
  LinearOptions lo;
  lo.activation = Activation::Gelu;
  lo.residual = &r;
  EXPECT_TRUE(same_bits(linear(x, w, &b, lo), ref::add(ref::activation(ref::linear(x, w, &b), Activation::Gelu), r)));
  Conv2dOptions co;
  co.residual = &cr;
  EXPECT_TRUE(same_bits(conv2d(img, cw, &cb, Conv2dParams::same(1), co),
                        ref::add(ref::conv2d(img, cw, &cb, Conv2dParams::same(1)), cr)));
  EXPECT_TRUE(same_bits(group_norm_silu(img, 8, g, beta, 1e-5f), ref::group_norm_silu(img, 8, g, beta, 1e-5f)));
  EXPECT_TRUE(same_bits(layer_norm(x, gl, bl, 1e-5f), ref::layer_norm(x, gl, bl, 1e-5f)));
  EXPECT_TRUE(same_bits(attention(q, k, v, 4, 0.25f), ref::attention(q, k, v, 4, 0.25f)));
  EXPECT_TRUE(same_bits(attention_causal(q, q, q, 4, 0.25f), ref::attention_causal(q, q, q, 4, 0.25f)));
  EXPECT_TRUE(same_bits(geglu(x), ref::geglu(x)));
  EXPECT_TRUE(same_bits(softmax(x), ref::softmax(x)));
}

}  // namespace
}  // namespace pigment::ops
