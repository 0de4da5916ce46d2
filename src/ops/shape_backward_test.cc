#include <gtest/gtest.h>

#include "ops/backward.h"
#include "ops/grad_check_test_util.h"
#include "ops/ops_test_util.h"

namespace pigment::ops {
namespace {
using testing::close;
using testing::deterministic;
using testing::DVec;
using testing::from_double;
using testing::matches_finite_differences;
using testing::randn;
using testing::same_bits;
using testing::to_double;

// ---- the forwards in double ----
testing::DForward upsample_d(int64_t nc, int64_t h, int64_t w) {
  return [=](const DVec& x) {
    DVec y(size_t(nc * 4 * h * w));
    for (int64_t c = 0; c < nc; ++c)
      for (int64_t i = 0; i < 2 * h; ++i)
        for (int64_t j = 0; j < 2 * w; ++j) y[(c * 2 * h + i) * 2 * w + j] = x[(c * h + i / 2) * w + j / 2];
    return y;
  };
}

testing::DForward avg_pool_d(int64_t nc, int64_t h, int64_t w) {  // input [nc, h, w], h and w even
  return [=](const DVec& x) {
    DVec y(size_t(nc * h * w / 4));
    for (int64_t c = 0; c < nc; ++c)
      for (int64_t i = 0; i < h / 2; ++i)
        for (int64_t j = 0; j < w / 2; ++j) {
          const double* s = x.data() + (c * h + 2 * i) * w + 2 * j;
          y[(c * h / 2 + i) * w / 2 + j] = (s[0] + s[1] + s[w] + s[w + 1]) / 4;
        }
    return y;
  };
}

testing::DForward slice_d(Shape s, int dim, int64_t begin, int64_t end) {
  return [=](const DVec& x) {
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < dim; ++d) outer *= s[d];
    for (int d = dim + 1; d < int(s.size()); ++d) inner *= s[d];
    DVec y;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = begin; i < end; ++i)
        for (int64_t k = 0; k < inner; ++k) y.push_back(x[(o * s[dim] + i) * inner + k]);
    return y;
  };
}

// x of shape `from` broadcast to `to` (NumPy rules: aligned at the right, size-1 dimensions repeat).
testing::DForward broadcast_d(Shape from, Shape to) {
  return [=](const DVec& x) {
    const size_t nd = to.size(), lead = nd - from.size();
    DVec y(size_t(shape_numel(to)));
    for (size_t i = 0; i < y.size(); ++i) {
      int64_t rem = int64_t(i), src = 0, stride = 1;
      for (size_t d = nd; d-- > 0;) {
        const int64_t idx = rem % to[d];
        rem /= to[d];
        if (d >= lead) {
          const int64_t n = from[d - lead];
          if (n != 1) src += idx * stride;
          stride *= n;
        }
      }
      y[i] = x[size_t(src)];
    }
    return y;
  };
}

TEST(ShapeBackward, UpsampleMatchesFiniteDifferencesAndReference) {
  const Tensor x = randn({2, 3, 5, 7}, 1), r = randn({2, 3, 10, 14}, 2);
  const auto f = upsample_d(6, 5, 7);
  EXPECT_TRUE(close(ref::upsample_nearest2x(x), from_double(r.shape(), f(to_double(x))), 0, 0));
  EXPECT_TRUE(matches_finite_differences(ref::upsample_nearest2x_backward(r), f, x, r));
  for (Shape s : {Shape{1, 1, 2, 2}, Shape{2, 3, 10, 14}, Shape{1, 4, 6, 34}, Shape{2, 64, 64, 64}}) {
    const Tensor dy = randn(s, 3);
    EXPECT_TRUE(same_bits(upsample_nearest2x_backward(dy), ref::upsample_nearest2x_backward(dy))) << shape_str(s);
  }
  EXPECT_THROW(upsample_nearest2x_backward(Tensor::zeros({1, 2, 3, 4})), Error);
  EXPECT_THROW(ref::upsample_nearest2x_backward(Tensor::zeros({2, 4, 4})), Error);
}

TEST(ShapeBackward, AvgPoolMatchesFiniteDifferencesAndReference) {
  const Tensor x = randn({2, 3, 6, 10}, 4), r = randn({2, 3, 3, 5}, 5);
  const auto f = avg_pool_d(6, 6, 10);
  EXPECT_TRUE(close(ref::avg_pool2x(x), from_double(r.shape(), f(to_double(x))), 1e-6f, 1e-6f));
  EXPECT_TRUE(matches_finite_differences(ref::avg_pool2x_backward(r), f, x, r));
  for (Shape s : {Shape{1, 1, 1, 1}, Shape{2, 3, 3, 5}, Shape{1, 4, 3, 17}, Shape{2, 64, 32, 32}}) {
    const Tensor dy = randn(s, 6);
    EXPECT_TRUE(same_bits(avg_pool2x_backward(dy), ref::avg_pool2x_backward(dy))) << shape_str(s);
  }
  EXPECT_THROW(avg_pool2x_backward(Tensor::zeros({4, 4})), Error);
}

TEST(ShapeBackward, SliceMatchesFiniteDifferencesAndReference) {
  const Shape s{3, 5, 4};
  const Tensor x = randn(s, 7);
  struct Case {
    int dim;
    int64_t begin, end;
  };
  for (Case c : {Case{0, 1, 3}, Case{1, 0, 5}, Case{1, 2, 4}, Case{2, 3, 4}, Case{-1, 1, 3}, Case{1, 2, 2}}) {
    const int d = c.dim < 0 ? c.dim + 3 : c.dim;
    Shape ys = s;
    ys[d] = c.end - c.begin;
    const Tensor r = randn(ys, 8);
    const auto f = slice_d(s, d, c.begin, c.end);
    EXPECT_TRUE(close(ref::slice(x, c.dim, c.begin, c.end), from_double(ys, f(to_double(x))), 0, 0));
    EXPECT_TRUE(matches_finite_differences(ref::slice_backward(r, s, c.dim, c.begin), f, x, r))
        << c.dim << " " << c.begin;
    EXPECT_TRUE(same_bits(slice_backward(r, s, c.dim, c.begin), ref::slice_backward(r, s, c.dim, c.begin)));
  }
  const Tensor big = randn({2, 640, 32, 32}, 9);
  EXPECT_TRUE(same_bits(slice_backward(big, {2, 1280, 32, 32}, 1, 640),
                        ref::slice_backward(big, {2, 1280, 32, 32}, 1, 640)));
  EXPECT_THROW(slice_backward(randn({3, 2, 4}, 1), s, 1, 4), Error);  // runs past the end
  EXPECT_THROW(slice_backward(randn({3, 2, 3}, 1), s, 1, 0), Error);  // another dimension differs
  EXPECT_THROW(slice_backward(randn({3, 2}, 1), s, 1, 0), Error);
  EXPECT_THROW(ref::slice_backward(randn({3, 2, 4}, 1), s, 3, 0), Error);
}

const std::pair<Shape, Shape> kBroadcasts[] = {
    {{2, 3, 4, 5}, {2, 3, 4, 5}}, {{2, 3, 4, 5}, {5}},       {{2, 3, 4, 5}, {1, 3, 1, 1}}, {{2, 3, 4, 5}, {3, 1, 1}},
    {{2, 3, 4, 5}, {2, 1, 1, 1}}, {{2, 3, 4, 5}, {1}},       {{2, 3, 4, 5}, {}},           {{2, 3, 4, 5}, {3, 1, 5}},
    {{2, 3, 4, 5}, {2, 1, 4, 1}}, {{7, 1, 5}, {1, 5}},      {{3, 1}, {1, 1}},             {{1, 1}, {1}},
    {{6, 9}, {6, 1}},             {{2, 3, 1, 5}, {3, 1, 1}}, {{4, 3, 2}, {4, 1, 2}},
};

TEST(ShapeBackward, ReduceToShapeMatchesFiniteDifferencesAndBroadcasting) {
  uint32_t seed = 20;
  for (const auto& [gs, s] : kBroadcasts) {
    const Tensor x = randn(s, seed++), r = randn(gs, seed++);
    const auto f = broadcast_d(s, gs);
    // The double forward is the broadcasting of ops::add.
    EXPECT_TRUE(close(ref::add(Tensor::zeros(gs), x), from_double(gs, f(to_double(x))), 0, 0))
        << shape_str(gs) << " <- " << shape_str(s);
    EXPECT_TRUE(matches_finite_differences(ref::reduce_to_shape(r, s), f, x, r))
        << shape_str(gs) << " <- " << shape_str(s);
  }
  EXPECT_THROW(ref::reduce_to_shape(Tensor::zeros({2, 3}), {3, 3}), Error);
  EXPECT_THROW(reduce_to_shape(Tensor::zeros({2, 3}), {2}), Error);
  EXPECT_THROW(reduce_to_shape(Tensor::zeros({3}), {1, 3}), Error);
}

TEST(ShapeBackward, ReduceToShapeFastMatchesReference) {
  std::vector<std::pair<Shape, Shape>> cases(std::begin(kBroadcasts), std::end(kBroadcasts));
  cases.insert(cases.end(), {{{2, 4096, 320}, {320}},
                             {{2, 320, 32, 32}, {1, 320, 1, 1}},
                             {{2, 320, 32, 32}, {2, 320, 1, 1}},
                             {{2, 77, 1000}, {1, 77, 1}},
                             {{3, 5, 600, 7}, {5, 1, 7}},
                             {{300, 301}, {1}},
                             {{4, 3, 1000}, {4, 1, 1000}},
                             {{0, 3}, {1, 3}}});  // nothing to sum: zeros
  uint32_t seed = 40;
  for (const auto& [gs, s] : cases) {
    const Tensor g = randn(gs, seed++);
    const Tensor fast = reduce_to_shape(g, s), slow = ref::reduce_to_shape(g, s);
    // Both sum in double; the order differs only where the summed dimensions are innermost.
    EXPECT_TRUE(close(fast, slow, 1e-6f, 1e-6f)) << shape_str(gs) << " -> " << shape_str(s);
    if (!s.empty() && s.back() == gs.back() && gs.back() != 1) {
      EXPECT_TRUE(same_bits(fast, slow)) << shape_str(gs) << " -> " << shape_str(s);
    }
  }
}

TEST(ShapeBackward, SameBitsAtOneAndTwoThreads) {
  const Tensor g = randn({2, 320, 32, 32}, 60);
  EXPECT_TRUE(deterministic([&] { return reduce_to_shape(g, {1, 320, 1, 1}); }));
  EXPECT_TRUE(deterministic([&] { return reduce_to_shape(g, {32}); }));
  EXPECT_TRUE(deterministic([&] { return reduce_to_shape(g, {1}); }));
  EXPECT_TRUE(deterministic([&] { return upsample_nearest2x_backward(g); }));
  EXPECT_TRUE(deterministic([&] { return avg_pool2x_backward(g); }));
  EXPECT_TRUE(deterministic([&] { return slice_backward(g, {2, 640, 32, 32}, 1, 320); }));
}

}  // namespace
}  // namespace pigment::ops
