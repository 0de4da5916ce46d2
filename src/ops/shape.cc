// Layout ops: resampling, concat, slice, permute. ref::: element loops. Fast: row kernels (SIMD lane shuffles for
// the 2x upsample, blocked transposes for NCHW ↔ NLC) and memcpy pieces of fixed size spread over threads.
#include <cstring>

#include "ops/autograd_ops.h"
#include "ops/profile.h"
#include "ops/reference.h"
#include "ops/simd_kernels.h"

namespace pigment::ops {

namespace {
int64_t concat_shape(const std::vector<Tensor>& xs, int& dim, Shape& s) {
  PIG_CHECK(!xs.empty(), "concat: no tensors");
  int nd = xs[0].ndim();
  if (dim < 0) dim += nd;
  PIG_CHECK(dim >= 0 && dim < nd, "concat: dimension out of range for rank ", nd);
  s = xs[0].shape();
  s[dim] = 0;
  for (const auto& t : xs) {
    PIG_CHECK(t.ndim() == nd, "concat: ranks differ: ", shape_str(t.shape()), " and ", shape_str(xs[0].shape()));
    for (int d = 0; d < nd; ++d)
      PIG_CHECK(d == dim || t.dim(d) == xs[0].dim(d), "concat: shapes ", shape_str(t.shape()), " and ",
                shape_str(xs[0].shape()), " differ outside dimension ", dim);
    s[dim] += t.dim(dim);
  }
  int64_t outer = 1;
  for (int d = 0; d < dim; ++d) outer *= s[d];
  return outer;
}

void check_slice(const Tensor& x, int& dim, int64_t begin, int64_t end) {
  int nd = x.ndim();
  if (dim < 0) dim += nd;
  PIG_CHECK(dim >= 0 && dim < nd && begin >= 0 && begin <= end && end <= x.dim(dim), "slice: [", begin, ", ", end,
            ") of dimension ", dim, " out of range for ", shape_str(x.shape()));
}
}  // namespace

namespace ref {
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
#pragma omp parallel for schedule(static) if (y.numel() > 65536)
  for (int64_t c = 0; c < NC; ++c)
    for (int64_t i = 0; i < Ho; ++i)
      for (int64_t j = 0; j < Wo; ++j) {
        const float* s = xf.f32() + (c * H + 2 * i) * W + 2 * j;
        y.f32()[(c * Ho + i) * Wo + j] = 0.25f * (s[0] + s[1] + s[W] + s[W + 1]);
      }
  return y;
}

Tensor concat(const std::vector<Tensor>& xs, int dim) {
  Shape s;
  const int64_t outer = concat_shape(xs, dim, s);
  int64_t inner = 1;
  for (int d = dim + 1; d < int(s.size()); ++d) inner *= s[d];
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
  check_slice(x, dim, begin, end);
  Shape s = x.shape();
  s[dim] = end - begin;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= s[d];
  for (int d = dim + 1; d < x.ndim(); ++d) inner *= s[d];
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
  std::vector<bool> seen(nd, false);
  for (int p : perm) {
    PIG_CHECK(p >= 0 && p < nd && !seen[p], "permute: axes must be a permutation of 0..", nd - 1);
    seen[p] = true;
  }
  Shape s(nd);
  std::vector<int64_t> in_stride(nd);
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
  PIG_CHECK(x.ndim() == 3 && x.dim(1) == h * w, "nlc_to_nchw: ", shape_str(x.shape()), " is not [N, ", h * w,
            ", C]");
  return permute(x.reshape({x.dim(0), h, w, x.dim(2)}), {0, 3, 1, 2});
}
}  // namespace ref

namespace {
constexpr int64_t kPiece = 65536;  // floats per copy task

struct Copy {
  float* dst;
  const float* src;
  int64_t len;
};
// Runs the copies, cut into pieces of at most kPiece floats, spread over threads when there is enough to do.
void run_copies(const std::vector<Copy>& copies) {
  std::vector<Copy> pieces;
  int64_t total = 0;
  for (const Copy& c : copies) {
    for (int64_t o = 0; o < c.len; o += kPiece) pieces.push_back({c.dst + o, c.src + o, std::min(kPiece, c.len - o)});
    total += c.len;
  }
#pragma omp parallel for schedule(static) if (total > kPiece)
  for (int64_t i = 0; i < int64_t(pieces.size()); ++i)
    std::memcpy(pieces[i].dst, pieces[i].src, size_t(pieces[i].len) * sizeof(float));
}

// y[n] = x[n]ᵀ for n < batch: x [batch, rows, cols] → y [batch, cols, rows], in 64x64 tiles.
Tensor batched_transpose(const Tensor& x, int64_t batch, int64_t rows, int64_t cols, Shape out) {
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty(std::move(out));
  constexpr int64_t T = 64;
  const int64_t tr = (rows + T - 1) / T, tc = (cols + T - 1) / T, tasks = batch * tr * tc;
  const float* X = xf.f32();
  float* Y = y.f32();
#pragma omp parallel for schedule(static) if (x.numel() > 65536)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t b = t / (tr * tc), r0 = (t / tc % tr) * T, c0 = (t % tc) * T;
    simd::transpose(X + (b * rows + r0) * cols + c0, size_t(cols), Y + (b * cols + c0) * rows + r0, size_t(rows),
                    size_t(std::min(T, rows - r0)), size_t(std::min(T, cols - c0)));
  }
  return y;
}
}  // namespace

Tensor upsample_nearest2x(const Tensor& x) {
  if (autograd::any_needs_grad({&x})) return recorded::upsample_nearest2x(x);
  profile::Scope prof([] { return std::string("upsample_nearest2x"); });
  PIG_CHECK(x.ndim() == 4, "upsample_nearest2x: expected [N,C,H,W], got ", shape_str(x.shape()));
  const int64_t NC = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty({x.dim(0), x.dim(1), 2 * H, 2 * W});
  const float* X = xf.f32();
  float* Y = y.f32();
#pragma omp parallel for schedule(static) if (y.numel() > 65536)
  for (int64_t r = 0; r < NC * H; ++r) {  // input row r → output rows 2r and 2r + 1
    float* d0 = Y + 2 * r * 2 * W;
    simd::upsample2x_row(X + r * W, d0, size_t(W));
    std::memcpy(d0 + 2 * W, d0, size_t(2 * W) * sizeof(float));
  }
  return y;
}

Tensor avg_pool2x(const Tensor& x) {
  if (autograd::any_needs_grad({&x})) return recorded::avg_pool2x(x);
  return ref::avg_pool2x(x);
}

Tensor concat(const std::vector<Tensor>& xs, int dim) {
  for (const auto& t : xs)
    if (autograd::needs_grad(t)) return recorded::concat(xs, dim);
  profile::Scope prof([] { return std::string("concat"); });
  Shape s;
  const int64_t outer = concat_shape(xs, dim, s);
  int64_t inner = 1;
  for (int d = dim + 1; d < int(s.size()); ++d) inner *= s[d];
  Tensor y = Tensor::empty(s);
  std::vector<Tensor> keep;  // float32 copies of non-float32 inputs
  std::vector<Copy> copies;
  int64_t off = 0;
  for (const auto& t : xs) {
    keep.push_back(t.as_f32());
    const int64_t len = t.dim(dim) * inner;
    for (int64_t o = 0; o < outer; ++o)
      copies.push_back({y.f32() + o * s[dim] * inner + off, keep.back().f32() + o * len, len});
    off += len;
  }
  run_copies(copies);
  return y;
}

Tensor slice(const Tensor& x, int dim, int64_t begin, int64_t end) {
  if (autograd::any_needs_grad({&x})) return recorded::slice(x, dim, begin, end);
  profile::Scope prof([] { return std::string("slice"); });
  check_slice(x, dim, begin, end);
  Shape s = x.shape();
  s[dim] = end - begin;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= s[d];
  for (int d = dim + 1; d < x.ndim(); ++d) inner *= s[d];
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty(s);
  const int64_t len = (end - begin) * inner;
  std::vector<Copy> copies;
  for (int64_t o = 0; o < outer; ++o) copies.push_back({y.f32() + o * len, xf.f32() + (o * x.dim(dim) + begin) * inner, len});
  run_copies(copies);
  return y;
}

std::vector<Tensor> chunk(const Tensor& x, int chunks, int dim) {
  const int64_t n = x.dim(dim);
  PIG_CHECK(chunks > 0 && n % chunks == 0, "chunk: dimension of size ", n, " does not split into ", chunks);
  std::vector<Tensor> out;
  for (int i = 0; i < chunks; ++i) out.push_back(slice(x, dim, i * n / chunks, (i + 1) * n / chunks));
  return out;
}

Tensor permute(const Tensor& x, const std::vector<int>& perm) {
  if (autograd::any_needs_grad({&x})) return recorded::permute(x, perm);
  profile::Scope prof([] { return std::string("permute"); });
  const int nd = x.ndim();
  PIG_CHECK(int(perm.size()) == nd, "permute: ", perm.size(), " axes for a rank-", nd, " tensor");
  std::vector<bool> seen(nd, false);
  for (int p : perm) {
    PIG_CHECK(p >= 0 && p < nd && !seen[p], "permute: axes must be a permutation of 0..", nd - 1);
    seen[p] = true;
  }
  Shape s(nd);
  std::vector<int64_t> in_stride(nd), st(nd);
  int64_t acc = 1;
  for (int d = nd - 1; d >= 0; --d) { in_stride[d] = acc; acc *= x.dim(d); }
  for (int d = 0; d < nd; ++d) s[d] = x.dim(perm[d]), st[d] = in_stride[perm[d]];
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty(s);
  if (nd == 0 || x.numel() == 0) {
    if (x.numel()) y.f32()[0] = xf.f32()[0];
    return y;
  }
  const int64_t L = s[nd - 1], rows = x.numel() / L, sl = st[nd - 1];
  const float* X = xf.f32();
  float* Y = y.f32();
#pragma omp parallel for schedule(static) if (x.numel() > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rem = r, src = 0;
    for (int d = nd - 2; d >= 0; --d) {
      src += (rem % s[d]) * st[d];
      rem /= s[d];
    }
    float* dst = Y + r * L;
    if (sl == 1) {
      std::memcpy(dst, X + src, size_t(L) * sizeof(float));
    } else {
      for (int64_t j = 0; j < L; ++j) dst[j] = X[src + j * sl];
    }
  }
  return y;
}

Tensor nchw_to_nlc(const Tensor& x) {
  if (autograd::any_needs_grad({&x})) return recorded::nchw_to_nlc(x);
  profile::Scope prof([] { return std::string("nchw_to_nlc"); });
  PIG_CHECK(x.ndim() == 4, "nchw_to_nlc: expected [N,C,H,W], got ", shape_str(x.shape()));
  const int64_t N = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
  return batched_transpose(x, N, C, HW, {N, HW, C});
}

Tensor nlc_to_nchw(const Tensor& x, int64_t h, int64_t w) {
  if (autograd::any_needs_grad({&x})) return recorded::nlc_to_nchw(x, h, w);
  profile::Scope prof([] { return std::string("nlc_to_nchw"); });
  PIG_CHECK(x.ndim() == 3 && x.dim(1) == h * w, "nlc_to_nchw: ", shape_str(x.shape()), " is not [N, ", h * w,
            ", C]");
  const int64_t N = x.dim(0), C = x.dim(2);
  return batched_transpose(x, N, h * w, C, {N, C, h, w});
}

}  // namespace pigment::ops
