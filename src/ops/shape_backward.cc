// Backward passes of the layout ops and of broadcasting. ref::: element loops, sums in double in the order of the
// flat index. Fast: row loops spread over threads in pieces fixed by the shape; reduce_to_shape sums in double, in
// the reference's order where the kept dimensions are innermost (bias gradients) and in eight interleaved partial
// sums over contiguous runs where the summed dimensions are innermost (per-channel gradients).
#include <algorithm>
#include <cstring>
#include <string>

#include "ops/backward.h"
#include "ops/profile.h"
#include "ops/simd_kernels.h"

namespace pigment::ops {

namespace {
void check_upsample_grad(const Tensor& dy) {
  PIG_CHECK(dy.ndim() == 4 && dy.dim(2) % 2 == 0 && dy.dim(3) % 2 == 0,
            "upsample_nearest2x_backward: expected a gradient [N, C, 2H, 2W], got ", shape_str(dy.shape()));
}
void check_pool_grad(const Tensor& dy) {
  PIG_CHECK(dy.ndim() == 4, "avg_pool2x_backward: expected a gradient [N, C, H, W], got ", shape_str(dy.shape()));
}

// Checks dy against slice(x, dim, begin, begin + dy.dim(dim)); returns the normalised dim.
int check_slice_grad(const Tensor& dy, const Shape& x_shape, int dim, int64_t begin) {
  const int nd = int(x_shape.size());
  if (dim < 0) dim += nd;
  PIG_CHECK(dim >= 0 && dim < nd && dy.ndim() == nd, "slice_backward: dimension ", dim, " of a gradient ",
            shape_str(dy.shape()), " for an input ", shape_str(x_shape));
  for (int d = 0; d < nd; ++d)
    PIG_CHECK(d == dim ? begin >= 0 && begin + dy.dim(d) <= x_shape[d] : dy.dim(d) == x_shape[d],
              "slice_backward: gradient ", shape_str(dy.shape()), " at offset ", begin, " of dimension ", dim,
              " does not fit the input ", shape_str(x_shape));
  return dim;
}

// For reduce_to_shape: whether `shape` broadcasts to g_shape (NumPy rules: aligned at the right, each dimension of
// `shape` equal to g's or 1, missing leading dimensions count as 1).
void check_broadcast(const Shape& g_shape, const Shape& shape) {
  bool ok = shape.size() <= g_shape.size();
  for (size_t i = 0; ok && i < shape.size(); ++i) {
    const int64_t s = shape[shape.size() - 1 - i], g = g_shape[g_shape.size() - 1 - i];
    ok = s == g || s == 1;
  }
  PIG_CHECK(ok, "reduce_to_shape: ", shape_str(shape), " does not broadcast to the gradient's ", shape_str(g_shape));
}

// g's dimensions, dropping those of size 1 and merging neighbours of the same kind, as (size, kept) pairs: kept
// dimensions are those `shape` has too, the others are summed.
struct Run {
  int64_t size;
  bool kept;
};
std::vector<Run> reduction_runs(const Shape& g_shape, const Shape& shape) {
  const size_t nd = g_shape.size(), lead = nd - shape.size();
  std::vector<Run> runs;
  for (size_t i = 0; i < nd; ++i) {
    if (g_shape[i] == 1) continue;
    const bool kept = i >= lead && shape[i - lead] == g_shape[i];
    if (!runs.empty() && runs.back().kept == kept)
      runs.back().size *= g_shape[i];
    else
      runs.push_back({g_shape[i], kept});
  }
  return runs;
}
}  // namespace

namespace ref {
Tensor upsample_nearest2x_backward(const Tensor& dy) {
  check_upsample_grad(dy);
  const int64_t NC = dy.dim(0) * dy.dim(1), H = dy.dim(2) / 2, W = dy.dim(3) / 2;
  Tensor gf = dy.as_f32();
  Tensor dx = Tensor::empty({dy.dim(0), dy.dim(1), H, W});
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < NC; ++c)
    for (int64_t i = 0; i < H; ++i)
      for (int64_t j = 0; j < W; ++j) {
        const float* s = gf.f32() + (c * 2 * H + 2 * i) * 2 * W + 2 * j;
        dx.f32()[(c * H + i) * W + j] = float(double(s[0]) + s[1] + s[2 * W] + s[2 * W + 1]);
      }
  return dx;
}

Tensor avg_pool2x_backward(const Tensor& dy) {
  check_pool_grad(dy);
  const int64_t NC = dy.dim(0) * dy.dim(1), H = dy.dim(2), W = dy.dim(3);
  Tensor gf = dy.as_f32();
  Tensor dx = Tensor::empty({dy.dim(0), dy.dim(1), 2 * H, 2 * W});
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < NC; ++c)
    for (int64_t i = 0; i < 2 * H; ++i)
      for (int64_t j = 0; j < 2 * W; ++j)
        dx.f32()[(c * 2 * H + i) * 2 * W + j] = 0.25f * gf.f32()[(c * H + i / 2) * W + j / 2];
  return dx;
}

Tensor slice_backward(const Tensor& dy, const Shape& x_shape, int dim, int64_t begin) {
  dim = check_slice_grad(dy, x_shape, dim, begin);
  Tensor gf = dy.as_f32();
  Tensor dx = Tensor::zeros(x_shape);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= x_shape[d];
  for (int d = dim + 1; d < int(x_shape.size()); ++d) inner *= x_shape[d];
  const int64_t len = dy.dim(dim);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < len; ++i)
      for (int64_t k = 0; k < inner; ++k)
        dx.f32()[(o * x_shape[dim] + begin + i) * inner + k] = gf.f32()[(o * len + i) * inner + k];
  return dx;
}

Tensor reduce_to_shape(const Tensor& g, const Shape& shape) {
  check_broadcast(g.shape(), shape);
  Tensor gf = g.as_f32();
  const size_t nd = g.shape().size(), lead = nd - shape.size();
  // Element strides of the result in g's dimensions (0 where summed).
  std::vector<int64_t> st(nd, 0);
  int64_t acc = 1;
  for (size_t i = nd; i-- > lead;) {
    const int64_t d = shape[i - lead];
    st[i] = d == 1 ? 0 : acc;
    acc *= d;
  }
  std::vector<double> sum(size_t(shape_numel(shape)), 0.0);
  for (int64_t i = 0; i < g.numel(); ++i) {
    int64_t rem = i, o = 0;
    for (size_t d = nd; d-- > 0;) {
      o += (rem % g.shape()[d]) * st[d];
      rem /= g.shape()[d];
    }
    sum[size_t(o)] += gf.f32()[i];
  }
  Tensor y = Tensor::empty(shape);
  for (size_t i = 0; i < sum.size(); ++i) y.f32()[i] = float(sum[i]);
  return y;
}
}  // namespace ref

namespace {
constexpr int64_t kParallelMin = 65536;
}  // namespace

Tensor upsample_nearest2x_backward(const Tensor& dy) {
  profile::Scope prof([] { return std::string("upsample_nearest2x_backward"); });
  check_upsample_grad(dy);
  const int64_t NC = dy.dim(0) * dy.dim(1), H = dy.dim(2) / 2, W = dy.dim(3) / 2;
  Tensor gf = dy.as_f32();
  Tensor dx = Tensor::empty({dy.dim(0), dy.dim(1), H, W});
  const float* G = gf.f32();
  float* X = dx.f32();
#pragma omp parallel for schedule(static) if (dy.numel() > kParallelMin)
  for (int64_t r = 0; r < NC * H; ++r) {  // output row r ← input rows 2r and 2r + 1
    const float *a = G + 2 * r * 2 * W, *b = a + 2 * W;
    float* o = X + r * W;
    // The reference's order: ((a0 + a1) + b0) + b1, in double (exact for the first two, one rounding at the end).
    for (int64_t j = 0; j < W; ++j)
      o[j] = float(double(a[2 * j]) + double(a[2 * j + 1]) + double(b[2 * j]) + double(b[2 * j + 1]));
  }
  return dx;
}

Tensor avg_pool2x_backward(const Tensor& dy) {
  profile::Scope prof([] { return std::string("avg_pool2x_backward"); });
  check_pool_grad(dy);
  const int64_t NC = dy.dim(0) * dy.dim(1), H = dy.dim(2), W = dy.dim(3);
  Tensor gf = dy.as_f32();
  Tensor dx = Tensor::empty({dy.dim(0), dy.dim(1), 2 * H, 2 * W});
  const float* G = gf.f32();
  float* X = dx.f32();
#pragma omp parallel for schedule(static) if (dy.numel() > kParallelMin / 4)
  for (int64_t r = 0; r < NC * H; ++r) {  // input row r → output rows 2r and 2r + 1
    float* d0 = X + 2 * r * 2 * W;
    simd::upsample2x_row(G + r * W, d0, size_t(W));
    simd::scale(d0, 0.25f, d0, size_t(2 * W));
    std::memcpy(d0 + 2 * W, d0, size_t(2 * W) * sizeof(float));
  }
  return dx;
}

Tensor slice_backward(const Tensor& dy, const Shape& x_shape, int dim, int64_t begin) {
  profile::Scope prof([] { return std::string("slice_backward"); });
  dim = check_slice_grad(dy, x_shape, dim, begin);
  Tensor gf = dy.as_f32();
  Tensor dx = Tensor::empty(x_shape);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < dim; ++d) outer *= x_shape[d];
  for (int d = dim + 1; d < int(x_shape.size()); ++d) inner *= x_shape[d];
  // Each outer block of dx: zeros before the slice, the gradient, zeros after.
  const int64_t before = begin * inner, len = dy.dim(dim) * inner, block = x_shape[dim] * inner;
  const int64_t after = block - before - len;
  const float* G = gf.f32();
  float* X = dx.f32();
#pragma omp parallel for schedule(static) if (dx.numel() > kParallelMin)
  for (int64_t o = 0; o < outer; ++o) {
    float* b = X + o * block;
    std::memset(b, 0, size_t(before) * sizeof(float));
    std::memcpy(b + before, G + o * len, size_t(len) * sizeof(float));
    std::memset(b + before + len, 0, size_t(after) * sizeof(float));
  }
  return dx;
}

Tensor reduce_to_shape(const Tensor& g, const Shape& shape) {
  profile::Scope prof([] { return std::string("reduce_to_shape"); });
  check_broadcast(g.shape(), shape);
  Tensor gf = g.as_f32();
  Tensor y = Tensor::empty(shape);
  if (g.numel() == y.numel()) {  // only dimensions of size 1 differ: the same elements in the same order
    std::memcpy(y.f32(), gf.f32(), g.nbytes());
    return y;
  }
  if (g.numel() == 0 || y.numel() == 0) {
    std::memset(y.f32(), 0, y.nbytes());
    return y;
  }
  const std::vector<Run> runs = reduction_runs(g.shape(), shape);
  const int nr = int(runs.size());
  // g's offset of the element with index `r` over the outer runs [0, nr - 1), counting either the kept runs
  // (kept = true) or the summed ones, the others at 0.
  std::vector<int64_t> stride(nr);
  int64_t acc = 1;
  for (int i = nr - 1; i >= 0; --i) stride[i] = acc, acc *= runs[i].size;
  auto offset = [&](int64_t idx, bool kept) {
    int64_t off = 0;
    for (int i = nr - 2; i >= 0; --i)
      if (runs[i].kept == kept) {
        off += (idx % runs[i].size) * stride[i];
        idx /= runs[i].size;
      }
    return off;
  };
  const float* G = gf.f32();
  float* Y = y.f32();
  const int64_t L = runs.back().size;
  const int64_t outputs = y.numel(), summed = g.numel() / outputs;
  if (runs.back().kept) {
    // Kept dimensions innermost: each task sums the rows of g into a block of up to kCols contiguous outputs, in the
    // reference's order (one double sum per output).
    constexpr int64_t kCols = 256;
    const int64_t rows = outputs / L, pieces = (L + kCols - 1) / kCols, tasks = rows * pieces;
    const int64_t rows_summed = summed;  // rows of g summed into each output row
#pragma omp parallel for schedule(static) if (g.numel() > kParallelMin)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t r = t / pieces, c0 = (t % pieces) * kCols, n = std::min(kCols, L - c0);
      const int64_t base = offset(r, true) + c0;
      double s[kCols] = {};
      for (int64_t k = 0; k < rows_summed; ++k) {
        const float* src = G + base + offset(k, false);
        for (int64_t j = 0; j < n; ++j) s[j] += src[j];
      }
      float* o = Y + r * L + c0;
      for (int64_t j = 0; j < n; ++j) o[j] = float(s[j]);
    }
  } else {
    // Summed dimensions innermost: each output sums contiguous runs of L, in eight interleaved double partial sums
    // (vectorisable), combined in a fixed order.
    const int64_t runs_per_output = summed / L;
#pragma omp parallel for schedule(static) if (g.numel() > kParallelMin)
    for (int64_t o = 0; o < outputs; ++o) {
      const int64_t base = offset(o, true);
      double p[8] = {};
      double tail = 0;
      for (int64_t k = 0; k < runs_per_output; ++k) {
        const float* src = G + base + offset(k, false);
        int64_t j = 0;
        for (; j + 8 <= L; j += 8)
          for (int q = 0; q < 8; ++q) p[q] += src[j + q];
        for (; j < L; ++j) tail += src[j];
      }
      Y[o] = float(((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7])) + tail);
    }
  }
  return y;
}

}  // namespace pigment::ops
