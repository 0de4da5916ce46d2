// Activations and arithmetic with NumPy broadcasting.
#include <cmath>

#include "ops/ops.h"

namespace pigment::ops {

namespace {
template <typename F>
Tensor map(const Tensor& x, F f) {
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty(x.shape());
  const float* a = xf.f32();
  float* o = y.f32();
  int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
  return y;
}

Shape broadcast_shape(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape s(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    PIG_CHECK(da == db || da == 1 || db == 1, "cannot broadcast ", shape_str(a), " with ", shape_str(b));
    s[i] = std::max(da, db);
  }
  return s;
}

template <typename F>
Tensor binary(const Tensor& a, const Tensor& b, F f) {
  Tensor af = a.as_f32(), bf = b.as_f32();
  if (a.shape() == b.shape()) {
    Tensor y = Tensor::empty(a.shape());
    const float *pa = af.f32(), *pb = bf.f32();
    float* o = y.f32();
    int64_t n = a.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) o[i] = f(pa[i], pb[i]);
    return y;
  }
  Shape s = broadcast_shape(a.shape(), b.shape());
  size_t nd = s.size();
  std::vector<int64_t> sa(nd, 0), sb(nd, 0);
  int64_t st_a = 1, st_b = 1;
  for (size_t i = nd; i-- > 0;) {
    size_t ia = i + a.shape().size(), ib = i + b.shape().size();
    if (ia >= nd) { int64_t d = a.shape()[ia - nd]; sa[i] = d == 1 ? 0 : st_a; st_a *= d; }
    if (ib >= nd) { int64_t d = b.shape()[ib - nd]; sb[i] = d == 1 ? 0 : st_b; st_b *= d; }
  }
  Tensor y = Tensor::empty(s);
  int64_t n = y.numel();
  const float *pa = af.f32(), *pb = bf.f32();
  float* o = y.f32();
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, oa = 0, ob = 0;
    for (size_t d = nd; d-- > 0;) {
      int64_t idx = rem % s[d];
      rem /= s[d];
      oa += idx * sa[d];
      ob += idx * sb[d];
    }
    o[i] = f(pa[oa], pb[ob]);
  }
  return y;
}
}  // namespace

Tensor silu(const Tensor& x) { return map(x, [](float v) { return v / (1.f + std::exp(-v)); }); }
Tensor gelu(const Tensor& x) {
  return map(x, [](float v) { return 0.5f * v * (1.f + std::erf(v * 0.70710678118654752f)); });
}
Tensor gelu_tanh(const Tensor& x) {
  return map(x, [](float v) {
    return 0.5f * v * (1.f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
  });
}
Tensor quick_gelu(const Tensor& x) { return map(x, [](float v) { return v / (1.f + std::exp(-1.702f * v)); }); }

Tensor geglu(const Tensor& x) {
  int64_t D2 = x.dim(-1);
  PIG_CHECK(D2 % 2 == 0, "geglu: last dimension ", D2, " is odd");
  int64_t D = D2 / 2, rows = x.numel() / D2;
  Tensor xf = x.as_f32();
  Shape s = x.shape();
  s.back() = D;
  Tensor y = Tensor::empty(s);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = xf.f32() + r * D2;
    float* o = y.f32() + r * D;
    for (int64_t i = 0; i < D; ++i) {
      float g = a[D + i];
      o[i] = a[i] * 0.5f * g * (1.f + std::erf(g * 0.70710678118654752f));
    }
  }
  return y;
}

Tensor add(const Tensor& a, const Tensor& b) { return binary(a, b, [](float x, float y) { return x + y; }); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(a, b, [](float x, float y) { return x - y; }); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(a, b, [](float x, float y) { return x * y; }); }
Tensor scale(const Tensor& x, float s) { return map(x, [s](float v) { return v * s; }); }

Tensor add_scaled(const Tensor& a, const Tensor& b, float sb) {
  PIG_CHECK(a.shape() == b.shape(), "add_scaled: shapes differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
  return binary(a, b, [sb](float x, float y) { return x + sb * y; });
}

void add_inplace(Tensor& a, const Tensor& b) {
  PIG_CHECK(a.shape() == b.shape(), "add_inplace: shapes differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
  Tensor bf = b.as_f32();
  float* p = a.f32();
  const float* q = bf.f32();
  for (int64_t i = 0; i < a.numel(); ++i) p[i] += q[i];
}

}  // namespace pigment::ops
