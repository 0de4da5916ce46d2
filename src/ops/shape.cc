// Layout ops: resampling, concat, slice, permute.
#include <cstring>

#include "ops/ops.h"

namespace pigment::ops {

Tensor upsample_nearest2x(const Tensor& x) {
  PIG_CHECK(x.ndim() == 4, "upsample_nearest2x: expected [N,C,H,W], got ", shape_str(x.shape()));
  int64_t NC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty({x.dim(0), x.dim(1), 2 * H, 2 * W});
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < NC; ++c)
    for (int64_t i = 0; i < 2 * H; ++i) {
      const float* src = xf.f32() + (c * H + i / 2) * W;
      float* dst = y.f32() + (c * 2 * H + i) * 2 * W;
      for (int64_t j = 0; j < 2 * W; ++j) dst[j] = src[j / 2];
    }
  return y;
}

Tensor avg_pool2x(const Tensor& x) {
  PIG_CHECK(x.ndim() == 4, "avg_pool2x: expected [N,C,H,W], got ", shape_str(x.shape()));
  int64_t NC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3), Ho = H / 2, Wo = W / 2;
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty({x.dim(0), x.dim(1), Ho, Wo});
  for (int64_t c = 0; c < NC; ++c)
    for (int64_t i = 0; i < Ho; ++i)
      for (int64_t j = 0; j < Wo; ++j) {
        const float* s = xf.f32() + (c * H + 2 * i) * W + 2 * j;
        y.f32()[(c * Ho + i) * Wo + j] = 0.25f * (s[0] + s[1] + s[W] + s[W + 1]);
      }
  return y;
}

Tensor concat(const std::vector<Tensor>& xs, int dim) {
  PIG_CHECK(!xs.empty(), "concat: no tensors");
  int nd = xs[0].ndim();
  if (dim < 0) dim += nd;
  PIG_CHECK(dim >= 0 && dim < nd, "concat: dimension out of range");
  Shape s = xs[0].shape();
  s[dim] = 0;
  for (const auto& t : xs) {
    PIG_CHECK(t.ndim() == nd, "concat: ranks differ");
    for (int d = 0; d < nd; ++d)
      PIG_CHECK(d == dim || t.dim(d) == xs[0].dim(d), "concat: shapes ", shape_str(t.shape()), " and ",
                shape_str(xs[0].shape()), " differ outside dimension ", dim);
    s[dim] += t.dim(dim);
  }
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= s[d];
  for (int d = dim + 1; d < nd; ++d) inner *= s[d];
  Tensor y = Tensor::empty(s);
  int64_t off = 0;
  for (const auto& t : xs) {
    Tensor tf = t.as_f32();
    int64_t len = t.dim(dim) * inner;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(y.f32() + o * s[dim] * inner + off, tf.f32() + o * len, len * sizeof(float));
    off += len;
  }
  return y;
}

Tensor slice(const Tensor& x, int dim, int64_t begin, int64_t end) {
  int nd = x.ndim();
  if (dim < 0) dim += nd;
  PIG_CHECK(dim >= 0 && dim < nd && begin >= 0 && begin <= end && end <= x.dim(dim), "slice: [", begin, ", ", end,
            ") of dimension ", dim, " out of range for ", shape_str(x.shape()));
  Shape s = x.shape();
  s[dim] = end - begin;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= s[d];
  for (int d = dim + 1; d < nd; ++d) inner *= s[d];
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty(s);
  int64_t len = (end - begin) * inner;
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(y.f32() + o * len, xf.f32() + (o * x.dim(dim) + begin) * inner, len * sizeof(float));
  return y;
}

std::vector<Tensor> chunk(const Tensor& x, int chunks, int dim) {
  int64_t n = x.dim(dim);
  PIG_CHECK(chunks > 0 && n % chunks == 0, "chunk: dimension of size ", n, " does not split into ", chunks);
  std::vector<Tensor> out;
  for (int i = 0; i < chunks; ++i) out.push_back(slice(x, dim, i * n / chunks, (i + 1) * n / chunks));
  return out;
}

Tensor permute(const Tensor& x, const std::vector<int>& perm) {
  int nd = x.ndim();
  PIG_CHECK(int(perm.size()) == nd, "permute: ", perm.size(), " axes for a rank-", nd, " tensor");
  Shape s(nd);
  std::vector<int64_t> in_stride(nd), out_stride_of_in(nd);
  int64_t st = 1;
  for (int d = nd - 1; d >= 0; --d) { in_stride[d] = st; st *= x.dim(d); }
  for (int d = 0; d < nd; ++d) s[d] = x.dim(perm[d]);
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty(s);
  int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, src = 0;
    for (int d = nd - 1; d >= 0; --d) {
      int64_t idx = rem % s[d];
      rem /= s[d];
      src += idx * in_stride[perm[d]];
    }
    y.f32()[i] = xf.f32()[src];
  }
  return y;
}

Tensor nchw_to_nlc(const Tensor& x) {
  PIG_CHECK(x.ndim() == 4, "nchw_to_nlc: expected [N,C,H,W], got ", shape_str(x.shape()));
  return permute(x, {0, 2, 3, 1}).reshape({x.dim(0), x.dim(2) * x.dim(3), x.dim(1)});
}

Tensor nlc_to_nchw(const Tensor& x, int64_t h, int64_t w) {
  PIG_CHECK(x.ndim() == 3 && x.dim(1) == h * w, "nlc_to_nchw: ", shape_str(x.shape()), " is not [N, ", h * w, ", C]");
  return permute(x.reshape({x.dim(0), h, w, x.dim(2)}), {0, 3, 1, 2});
}

}  // namespace pigment::ops
