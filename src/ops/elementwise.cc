// Activations and arithmetic with NumPy broadcasting. ref::: scalar loops over flat indices. Fast: SIMD kernels
// over fixed-size chunks; broadcasting is reduced to runs along the (merged) innermost dimension, so adding a
// [N, C, 1, 1] or [C] tensor runs at the speed of a same-shape add.
#include <algorithm>
#include <cmath>

#include "ops/autograd_ops.h"
#include "ops/precision.h"
#include "ops/profile.h"
#include "ops/reference.h"
#include "ops/simd_kernels.h"

namespace pigment::ops {

namespace {
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
}  // namespace

namespace ref {
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

Tensor relu(const Tensor& x) { return map(x, [](float v) { return v > 0 ? v : 0.f; }); }
Tensor clamp(const Tensor& x, float lo, float hi) {
  PIG_CHECK(lo <= hi, "clamp: lower bound ", lo, " above upper bound ", hi);
  return map(x, [lo, hi](float v) { return std::clamp(v, lo, hi); });
}
Tensor exp(const Tensor& x) { return map(x, [](float v) { return std::exp(v); }); }
Tensor pointwise(const Tensor& x, Pointwise f) { return map(x, [f](float v) { return pointwise_value(v, f); }); }

Tensor activation(const Tensor& x, Activation a) {
  switch (a) {
    case Activation::Silu: return silu(x);
    case Activation::Gelu: return gelu(x);
    case Activation::GeluTanh: return gelu_tanh(x);
    case Activation::QuickGelu: return quick_gelu(x);
    case Activation::None: break;
  }
  return x.as_f32().clone();
}

Tensor geglu(const Tensor& x) {
  int64_t D2 = x.dim(-1);
  PIG_CHECK(D2 % 2 == 0, "geglu: last dimension ", D2, " is odd");
  int64_t D = D2 / 2, rows = D2 ? x.numel() / D2 : 0;
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
}  // namespace ref

namespace {
constexpr int64_t kChunk = 16384;  // elements per task
constexpr int64_t kParallelMin = 65536;

// Runs f(begin, len) over [0, n) in chunks, in parallel when n is large.
template <typename F>
void for_chunks(int64_t n, F f) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) f(c * kChunk, std::min(kChunk, n - c * kChunk));
}

Tensor unary(const Tensor& x, simd::Unary op) {
  profile::Scope prof([] { return std::string("unary activation"); });
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty(x.shape());
  const float* a = xf.f32();
  float* o = y.f32();
  for_chunks(x.numel(), [&](int64_t b, int64_t len) { simd::unary(op, a + b, o + b, size_t(len)); });
  return y;
}

Tensor binary(const Tensor& a, const Tensor& b, simd::Binary op) {
  profile::Scope prof([] { return std::string("add/sub/mul"); });
  Tensor af = a.as_f32(), bf = b.as_f32();
  const float *pa = af.f32(), *pb = bf.f32();
  if (a.shape() == b.shape()) {
    Tensor y = Tensor::empty(a.shape());
    float* o = y.f32();
    for_chunks(a.numel(), [&](int64_t s, int64_t len) { simd::binary(op, pa + s, 1, pb + s, 1, o + s, size_t(len)); });
    return y;
  }
  const Shape s = broadcast_shape(a.shape(), b.shape());
  const size_t nd = s.size();
  // Element strides of a and b in the output's dimensions (0 where broadcast).
  std::vector<int64_t> sa(nd, 0), sb(nd, 0);
  int64_t st_a = 1, st_b = 1;
  for (size_t i = nd; i-- > 0;) {
    size_t ia = i + a.shape().size(), ib = i + b.shape().size();
    if (ia >= nd) { int64_t d = a.shape()[ia - nd]; sa[i] = d == 1 ? 0 : st_a; st_a *= d; }
    if (ib >= nd) { int64_t d = b.shape()[ib - nd]; sb[i] = d == 1 ? 0 : st_b; st_b *= d; }
  }
  // Drop size-1 dimensions and merge neighbours that both operands walk (or both repeat) contiguously.
  std::vector<int64_t> dims, da, db;
  for (size_t i = 0; i < nd; ++i) {
    if (s[i] == 1) continue;
    if (!dims.empty() && da.back() == sa[i] * s[i] && db.back() == sb[i] * s[i]) {
      dims.back() *= s[i];
      da.back() = sa[i];
      db.back() = sb[i];
    } else {
      dims.push_back(s[i]);
      da.push_back(sa[i]);
      db.push_back(sb[i]);
    }
  }
  Tensor y = Tensor::empty(s);
  float* o = y.f32();
  if (dims.empty()) {  // every dimension is 1
    simd::binary(op, pa, 0, pb, 0, o, 1);
    return y;
  }
  const int64_t L = dims.back();
  const size_t step_a = size_t(da.back()), step_b = size_t(db.back());  // 0 or 1
  const int64_t rows = y.numel() / L;
  const int64_t pieces = (L + kChunk - 1) / kChunk, tasks = rows * pieces;
  const int64_t outer = int64_t(dims.size()) - 1;
#pragma omp parallel for schedule(static) if (y.numel() > kParallelMin)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t r = t / pieces, p0 = (t % pieces) * kChunk, len = std::min(kChunk, L - p0);
    int64_t rem = r, oa = 0, ob = 0;
    for (int64_t d = outer - 1; d >= 0; --d) {
      const int64_t idx = rem % dims[d];
      rem /= dims[d];
      oa += idx * da[d];
      ob += idx * db[d];
    }
    simd::binary(op, pa + oa + p0 * int64_t(step_a), step_a, pb + ob + p0 * int64_t(step_b), step_b, o + r * L + p0,
                 size_t(len));
  }
  return y;
}
}  // namespace

// Each op records itself on an autograd tape when an input needs a gradient (ops/autograd.h).
Tensor silu(const Tensor& x) {
  if (autograd::any_needs_grad({&x})) return recorded::activation(x, Activation::Silu);
  return unary(x, simd::Unary::Silu);
}
Tensor gelu(const Tensor& x) {
  if (autograd::any_needs_grad({&x})) return recorded::activation(x, Activation::Gelu);
  return unary(x, simd::Unary::Gelu);
}
Tensor gelu_tanh(const Tensor& x) {
  if (autograd::any_needs_grad({&x})) return recorded::activation(x, Activation::GeluTanh);
  return unary(x, simd::Unary::GeluTanh);
}
Tensor quick_gelu(const Tensor& x) {
  if (autograd::any_needs_grad({&x})) return recorded::activation(x, Activation::QuickGelu);
  return unary(x, simd::Unary::QuickGelu);
}

// The plain maps: one <cmath> call per element (no SIMD approximation), so the replaced model loops keep their bits.
namespace {
template <typename F>
Tensor map_chunks(const char* op, const Tensor& x, F f) {
  profile::Scope prof([op] { return std::string(op); });
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty(x.shape());
  const float* a = xf.f32();
  float* o = y.f32();
  for_chunks(x.numel(), [&](int64_t b, int64_t len) {
    for (int64_t i = b; i < b + len; ++i) o[i] = f(a[i]);
  });
  return y;
}
}  // namespace

Tensor relu(const Tensor& x) {
  if (autograd::any_needs_grad({&x})) return recorded::relu(x);
  if (precision() == Precision::Reference) return ref::relu(x);
  return map_chunks("relu", x, [](float v) { return v > 0 ? v : 0.f; });
}
Tensor clamp(const Tensor& x, float lo, float hi) {
  if (autograd::any_needs_grad({&x})) return recorded::clamp(x, lo, hi);
  if (precision() == Precision::Reference) return ref::clamp(x, lo, hi);
  PIG_CHECK(lo <= hi, "clamp: lower bound ", lo, " above upper bound ", hi);
  return map_chunks("clamp", x, [lo, hi](float v) { return std::clamp(v, lo, hi); });
}
Tensor exp(const Tensor& x) {
  if (autograd::any_needs_grad({&x})) return recorded::exp(x);
  if (precision() == Precision::Reference) return ref::exp(x);
  return map_chunks("exp", x, [](float v) { return std::exp(v); });
}

float pointwise_value(float v, Pointwise f) {
  switch (f) {
    case Pointwise::LeakyRelu: return v > 0 ? v : 0.01f * v;
    case Pointwise::Elu: return v > 0 ? v : std::expm1(v);
    case Pointwise::HardSwish: return v <= -3.f ? 0.f : v >= 3.f ? v : v * (v + 3.f) / 6.f;
    case Pointwise::Tanh: return std::tanh(v);
    case Pointwise::Sigmoid: return 1.f / (1.f + std::exp(-v));
    case Pointwise::Softsign: return v / (1.f + std::fabs(v));
    case Pointwise::Mish: return v * std::tanh(v > 20.f ? v : std::log1p(std::exp(v)));
  }
  return v;
}

Tensor pointwise(const Tensor& x, Pointwise f) {
  if (autograd::any_needs_grad({&x})) return recorded::pointwise(x, f);
  if (precision() == Precision::Reference) return ref::pointwise(x, f);
  return map_chunks("pointwise", x, [f](float v) { return pointwise_value(v, f); });
}

Tensor geglu(const Tensor& x) {
  if (autograd::any_needs_grad({&x})) return recorded::geglu(x);
  if (precision() == Precision::Reference) return ref::geglu(x);
  profile::Scope prof([] { return std::string("geglu"); });
  PIG_CHECK(x.ndim() >= 1, "geglu: input must have at least one dimension");
  const int64_t D2 = x.dim(-1);
  PIG_CHECK(D2 % 2 == 0, "geglu: last dimension ", D2, " is odd");
  const int64_t D = D2 / 2, rows = D2 ? x.numel() / D2 : 0;
  Tensor xf = x.as_f32();
  Shape s = x.shape();
  s.back() = D;
  Tensor y = Tensor::empty(s);
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) simd::geglu(xf.f32() + r * D2, y.f32() + r * D, size_t(D));
  return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  if (autograd::any_needs_grad({&a, &b})) return recorded::add(a, b);
  return binary(a, b, simd::Binary::Add);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  if (autograd::any_needs_grad({&a, &b})) return recorded::sub(a, b);
  return binary(a, b, simd::Binary::Sub);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  if (autograd::any_needs_grad({&a, &b})) return recorded::mul(a, b);
  return binary(a, b, simd::Binary::Mul);
}

Tensor scale(const Tensor& x, float s) {
  if (autograd::any_needs_grad({&x})) return recorded::scale(x, s);
  profile::Scope prof([] { return std::string("scale"); });
  Tensor xf = x.as_f32();
  Tensor y = Tensor::empty(x.shape());
  const float* a = xf.f32();
  float* o = y.f32();
  for_chunks(x.numel(), [&](int64_t b, int64_t len) { simd::scale(a + b, s, o + b, size_t(len)); });
  return y;
}

Tensor add_scaled(const Tensor& a, const Tensor& b, float sb) {
  if (autograd::any_needs_grad({&a, &b})) return recorded::add_scaled(a, b, sb);
  profile::Scope prof([] { return std::string("add_scaled"); });
  PIG_CHECK(a.shape() == b.shape(), "add_scaled: shapes differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
  Tensor af = a.as_f32(), bf = b.as_f32();
  Tensor y = Tensor::empty(a.shape());
  const float *pa = af.f32(), *pb = bf.f32();
  float* o = y.f32();
  for_chunks(a.numel(), [&](int64_t s, int64_t len) { simd::add_scaled(pa + s, pb + s, sb, o + s, size_t(len)); });
  return y;
}

void add_inplace(Tensor& a, const Tensor& b) {
  if (autograd::any_needs_grad({&a, &b})) return recorded::add_inplace(a, b);
  profile::Scope prof([] { return std::string("add_inplace"); });
  PIG_CHECK(a.shape() == b.shape(), "add_inplace: shapes differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
  Tensor bf = b.as_f32();
  float* p = a.f32();
  const float* q = bf.f32();
  for_chunks(a.numel(), [&](int64_t s, int64_t len) { simd::binary(simd::Binary::Add, p + s, 1, q + s, 1, p + s, size_t(len)); });
}

}  // namespace pigment::ops
