// Backward passes of the activations: dx = dy ⊙ act'(x), from the forward's input x. ref::: scalar loops in double
// (the derivative written in the form that stays accurate in each tail). Fast: Highway SIMD kernels (compiled here
// once per target) over fixed-size chunks spread over threads; every element is computed alone, so results do not
// depend on the thread count.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/elementwise_backward.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include "ops/simd_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace pigment::ops::simd_backward {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
using pigment::ops::simd::HWY_NAMESPACE::Erf;

// d/dx of x·σ(k·x) = s·(1 + k·x·(1 − s)), s = σ(k·x) = 1/(1 + e), 1 − s = e·s with e = exp(−k·x) (clamped where
// it would overflow: s is then a denormal and the product tiny, as it should be).
HWY_INLINE VF SigmoidXGrad(DF d, VF x, float k) {
  const VF kx = hn::Mul(hn::Set(d, k), x);
  const VF e = hn::Exp(d, hn::Min(hn::Neg(kx), hn::Set(d, 88.f)));
  const VF s = hn::Div(hn::Set(d, 1.f), hn::Add(hn::Set(d, 1.f), e));
  return hn::Mul(s, hn::MulAdd(kx, hn::Mul(e, s), hn::Set(d, 1.f)));
}

// gelu(x) = x·Φ(x) and gelu'(x) = Φ(x) + x·φ(x), Φ(x) = (1 + erf(x/√2))/2, φ(x) = exp(−x²/2)/√(2π). The exponent is
// clamped so that huge |x| gives 0 instead of exp(−inf).
HWY_INLINE void GeluAndGrad(DF d, VF x, VF& gelu, VF& grad) {
  const VF phi_cdf = hn::Mul(hn::Set(d, 0.5f), hn::Add(hn::Set(d, 1.f), Erf(d, hn::Mul(x, hn::Set(d, 0.70710678118654752f)))));
  const VF arg = hn::Max(hn::Mul(hn::Set(d, -0.5f), hn::Mul(x, x)), hn::Set(d, -104.f));
  const VF pdf = hn::Mul(hn::Exp(d, arg), hn::Set(d, 0.3989422804014327f));
  gelu = hn::Mul(x, phi_cdf);
  grad = hn::MulAdd(x, pdf, phi_cdf);
}
HWY_INLINE VF GeluGrad(DF d, VF x) {
  VF g, dg;
  GeluAndGrad(d, x, g, dg);
  return dg;
}

// gelu_tanh(x) = x·(1 + tanh(u))/2, u = k(x + c·x³). With s = (1 + tanh(u))/2 = σ(2u) and 1 − tanh² = 4s(1 − s):
// gelu_tanh'(x) = s + 2x·s(1 − s)·k(1 + 3c·x²); 1 − s = e·s with e = exp(−2u), accurate in both tails. Beyond
// |x| = 10 the derivative is 0 or 1 to within 1e-35, so x is clamped there (x³ cannot overflow).
HWY_INLINE VF GeluTanhGrad(DF d, VF x) {
  const VF xc = hn::Min(hn::Max(x, hn::Set(d, -10.f)), hn::Set(d, 10.f));
  const VF x2 = hn::Mul(xc, xc);
  const VF u = hn::Mul(hn::Set(d, 0.7978845608028654f), hn::MulAdd(hn::Mul(hn::Set(d, 0.044715f), x2), xc, xc));
  const VF e = hn::Exp(d, hn::Min(hn::Mul(hn::Set(d, -2.f), u), hn::Set(d, 88.f)));
  const VF s = hn::Div(hn::Set(d, 1.f), hn::Add(hn::Set(d, 1.f), e));
  const VF du = hn::Mul(hn::Set(d, 0.7978845608028654f), hn::MulAdd(hn::Set(d, 3.f * 0.044715f), x2, hn::Set(d, 1.f)));
  const VF t = hn::Mul(hn::Mul(hn::Add(xc, xc), hn::Mul(s, hn::Mul(e, s))), du);
  return hn::Add(s, t);
}

// Runs dx = f(dy, x) over n floats: whole vectors, then the tail through padded buffers.
template <class F>
HWY_INLINE void ForEach2(const float* dy, const float* x, float* dx, size_t n, F f) {
  const DF d;
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(f(hn::LoadU(d, dy + i), hn::LoadU(d, x + i)), d, dx + i);
  if (i < n) {
    alignas(64) float bdy[64] = {}, bx[64] = {};
    for (size_t j = i; j < n; ++j) bdy[j - i] = dy[j], bx[j - i] = x[j];
    hn::Store(f(hn::Load(d, bdy), hn::Load(d, bx)), d, bdy);
    for (size_t j = i; j < n; ++j) dx[j] = bdy[j - i];
  }
}

// op: 0 silu, 1 gelu, 2 gelu_tanh, 3 quick_gelu.
void ActivationBackwardImpl(int op, const float* dy, const float* x, float* dx, size_t n) {
  const DF d;
  switch (op) {
    case 0: return ForEach2(dy, x, dx, n, [&](VF g, VF v) { return hn::Mul(g, SigmoidXGrad(d, v, 1.f)); });
    case 1: return ForEach2(dy, x, dx, n, [&](VF g, VF v) { return hn::Mul(g, GeluGrad(d, v)); });
    case 2: return ForEach2(dy, x, dx, n, [&](VF g, VF v) { return hn::Mul(g, GeluTanhGrad(d, v)); });
    case 3: return ForEach2(dy, x, dx, n, [&](VF g, VF v) { return hn::Mul(g, SigmoidXGrad(d, v, 1.702f)); });
  }
}

// One row of geglu: x [2n] = (a, g), dy [n] → dx [2n] = (dy·gelu(g), dy·a·gelu'(g)).
void GegluBackwardImpl(const float* dy, const float* x, float* dx, size_t n) {
  const DF d;
  const size_t N = hn::Lanes(d);
  auto one = [&](VF vdy, VF a, VF g, VF& da, VF& dg) {
    VF gl, gr;
    GeluAndGrad(d, g, gl, gr);
    da = hn::Mul(vdy, gl);
    dg = hn::Mul(hn::Mul(vdy, a), gr);
  };
  size_t i = 0;
  for (; i + N <= n; i += N) {
    VF da, dg;
    one(hn::LoadU(d, dy + i), hn::LoadU(d, x + i), hn::LoadU(d, x + n + i), da, dg);
    hn::StoreU(da, d, dx + i);
    hn::StoreU(dg, d, dx + n + i);
  }
  for (; i < n; ++i) {  // tail: one lane at a time through a vector
    VF da, dg;
    one(hn::Set(d, dy[i]), hn::Set(d, x[i]), hn::Set(d, x[n + i]), da, dg);
    dx[i] = hn::GetLane(da);
    dx[n + i] = hn::GetLane(dg);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace pigment::ops::simd_backward
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cmath>
#include <string>
#include <vector>

#include "ops/backward.h"
#include "ops/precision.h"
#include "ops/profile.h"

namespace pigment::ops {

namespace simd_backward {
HWY_EXPORT(ActivationBackwardImpl);
HWY_EXPORT(GegluBackwardImpl);
}  // namespace simd_backward

namespace {
void check_same_shape(const char* op, const Tensor& dy, const Tensor& x) {
  PIG_CHECK(dy.shape() == x.shape(), op, ": gradient ", shape_str(dy.shape()), " does not match the input ",
            shape_str(x.shape()));
}

// geglu's x [..., 2N] and dy [..., N]; returns N.
int64_t check_geglu(const Tensor& dy, const Tensor& x) {
  PIG_CHECK(x.ndim() >= 1 && x.dim(-1) % 2 == 0, "geglu_backward: input ", shape_str(x.shape()),
            " needs an even last dimension");
  Shape s = x.shape();
  s.back() /= 2;
  PIG_CHECK(dy.shape() == s, "geglu_backward: gradient ", shape_str(dy.shape()), " does not match the output ",
            shape_str(s), " of the input ", shape_str(x.shape()));
  return s.back();
}

constexpr double kSqrtHalf = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
constexpr double kTanhK = 0.7978845608028654, kTanhC = 0.044715;

double sigmoid_x_grad(double x, double k) {
  const double e = std::exp(-k * x), s = 1 / (1 + e);
  return std::isinf(e) ? 0 : s * (1 + k * x * e * s);
}
double gelu_cdf(double x) { return 0.5 * std::erfc(-x * kSqrtHalf); }
double gelu_grad(double x) { return gelu_cdf(x) + x * std::exp(-0.5 * x * x) * kInvSqrt2Pi; }
double gelu_tanh_grad(double x) {
  const double u = kTanhK * (x + kTanhC * x * x * x);
  const double e = std::exp(-2 * u), s = 1 / (1 + e);
  if (std::isinf(e)) return 0;
  return s + 2 * x * s * (e * s) * kTanhK * (1 + 3 * kTanhC * x * x);
}
}  // namespace

namespace ref {
namespace {
template <typename F>
Tensor map_grad(const char* op, const Tensor& dy, const Tensor& x, F grad) {
  check_same_shape(op, dy, x);
  Tensor gf = dy.as_f32(), xf = x.as_f32();
  Tensor dx = Tensor::empty(x.shape());
  const float *g = gf.f32(), *v = xf.f32();
  float* o = dx.f32();
  const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) o[i] = float(double(g[i]) * grad(double(v[i])));
  return dx;
}
}  // namespace

Tensor silu_backward(const Tensor& dy, const Tensor& x) {
  return map_grad("silu_backward", dy, x, [](double v) { return sigmoid_x_grad(v, 1.0); });
}
Tensor gelu_backward(const Tensor& dy, const Tensor& x) { return map_grad("gelu_backward", dy, x, gelu_grad); }
Tensor gelu_tanh_backward(const Tensor& dy, const Tensor& x) {
  return map_grad("gelu_tanh_backward", dy, x, gelu_tanh_grad);
}
Tensor quick_gelu_backward(const Tensor& dy, const Tensor& x) {
  return map_grad("quick_gelu_backward", dy, x, [](double v) { return sigmoid_x_grad(v, 1.702); });
}

Tensor activation_backward(const Tensor& dy, const Tensor& x, Activation a) {
  switch (a) {
    case Activation::Silu: return silu_backward(dy, x);
    case Activation::Gelu: return gelu_backward(dy, x);
    case Activation::GeluTanh: return gelu_tanh_backward(dy, x);
    case Activation::QuickGelu: return quick_gelu_backward(dy, x);
    case Activation::None: break;
  }
  check_same_shape("activation_backward", dy, x);
  return dy.as_f32().clone();
}

// The masks give dy or an exact +0 (as PyTorch's where()), never dy·0 (which would be −0 for a negative dy).
Tensor relu_backward(const Tensor& dy, const Tensor& x) {
  check_same_shape("relu_backward", dy, x);
  std::vector<float> g = dy.as_f32().to_vector(), v = x.as_f32().to_vector();
  for (size_t i = 0; i < g.size(); ++i) g[i] = v[i] > 0 ? g[i] : 0.f;
  return Tensor::from_vector(x.shape(), g);
}
Tensor clamp_backward(const Tensor& dy, const Tensor& x, float lo, float hi) {
  check_same_shape("clamp_backward", dy, x);
  std::vector<float> g = dy.as_f32().to_vector(), v = x.as_f32().to_vector();
  for (size_t i = 0; i < g.size(); ++i) g[i] = v[i] >= lo && v[i] <= hi ? g[i] : 0.f;
  return Tensor::from_vector(x.shape(), g);
}
Tensor exp_backward(const Tensor& dy, const Tensor& y) {
  return map_grad("exp_backward", dy, y, [](double e) { return e; });
}

Tensor geglu_backward(const Tensor& dy, const Tensor& x) {
  const int64_t D = check_geglu(dy, x), rows = D ? dy.numel() / D : 0;
  Tensor gf = dy.as_f32(), xf = x.as_f32();
  Tensor dx = Tensor::empty(x.shape());
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = gf.f32() + r * D;
    const float* a = xf.f32() + r * 2 * D;
    float* o = dx.f32() + r * 2 * D;
    for (int64_t i = 0; i < D; ++i) {
      const double h = a[D + i];
      o[i] = float(double(g[i]) * h * gelu_cdf(h));
      o[D + i] = float(double(g[i]) * a[i] * gelu_grad(h));
    }
  }
  return dx;
}
Tensor pointwise_backward(const Tensor& dy, const Tensor& x, Pointwise f) {
  check_same_shape("pointwise_backward", dy, x);
  std::vector<float> g = dy.as_f32().to_vector(), v = x.as_f32().to_vector();
  for (size_t i = 0; i < g.size(); ++i) g[i] = pointwise_grad(g[i], v[i], f);
  return Tensor::from_vector(x.shape(), g);
}

}  // namespace ref

namespace {
constexpr int64_t kChunk = 16384;  // elements per task
constexpr int64_t kParallelMin = 65536;

Tensor unary_backward(const char* op, const Tensor& dy, const Tensor& x, int kernel) {
  profile::Scope prof([op] { return std::string(op); });
  check_same_shape(op, dy, x);
  Tensor gf = dy.as_f32(), xf = x.as_f32();
  Tensor dx = Tensor::empty(x.shape());
  const float *g = gf.f32(), *v = xf.f32();
  float* o = dx.f32();
  const int64_t n = x.numel(), chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = c * kChunk;
    HWY_DYNAMIC_DISPATCH(simd_backward::ActivationBackwardImpl)(kernel, g + b, v + b, o + b,
                                                                 size_t(std::min(kChunk, n - b)));
  }
  return dx;
}
}  // namespace

Tensor silu_backward(const Tensor& dy, const Tensor& x) { return unary_backward("silu_backward", dy, x, 0); }
Tensor gelu_backward(const Tensor& dy, const Tensor& x) { return unary_backward("gelu_backward", dy, x, 1); }
Tensor gelu_tanh_backward(const Tensor& dy, const Tensor& x) {
  return unary_backward("gelu_tanh_backward", dy, x, 2);
}
Tensor quick_gelu_backward(const Tensor& dy, const Tensor& x) {
  return unary_backward("quick_gelu_backward", dy, x, 3);
}

Tensor activation_backward(const Tensor& dy, const Tensor& x, Activation a) {
  switch (a) {
    case Activation::Silu: return silu_backward(dy, x);
    case Activation::Gelu: return gelu_backward(dy, x);
    case Activation::GeluTanh: return gelu_tanh_backward(dy, x);
    case Activation::QuickGelu: return quick_gelu_backward(dy, x);
    case Activation::None: break;
  }
  check_same_shape("activation_backward", dy, x);
  return dy.as_f32().clone();
}

namespace {
// dx = dy ⊙ f(v) over the forward's input (or output) v, one element at a time in float, in fixed chunks.
template <typename F>
Tensor masked_backward(const char* op, const Tensor& dy, const Tensor& v, F f) {
  profile::Scope prof([op] { return std::string(op); });
  check_same_shape(op, dy, v);
  Tensor gf = dy.as_f32(), vf = v.as_f32();
  Tensor dx = Tensor::empty(v.shape());
  const float *g = gf.f32(), *a = vf.f32();
  float* o = dx.f32();
  const int64_t n = v.numel(), chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) o[i] = f(g[i], a[i]);
  return dx;
}
}  // namespace

Tensor relu_backward(const Tensor& dy, const Tensor& x) {
  if (precision() == Precision::Reference) return ref::relu_backward(dy, x);
  return masked_backward("relu_backward", dy, x, [](float g, float v) { return v > 0 ? g : 0.f; });
}
Tensor clamp_backward(const Tensor& dy, const Tensor& x, float lo, float hi) {
  if (precision() == Precision::Reference) return ref::clamp_backward(dy, x, lo, hi);
  return masked_backward("clamp_backward", dy, x, [lo, hi](float g, float v) { return v >= lo && v <= hi ? g : 0.f; });
}
Tensor exp_backward(const Tensor& dy, const Tensor& y) {
  if (precision() == Precision::Reference) return ref::exp_backward(dy, y);
  return masked_backward("exp_backward", dy, y, [](float g, float e) { return g * e; });
}

float pointwise_grad(float g, float v, Pointwise f) {
  switch (f) {
    case Pointwise::LeakyRelu: return v > 0 ? g : g * 0.01f;
    case Pointwise::Elu: return v > 0 ? g : g * std::exp(v);
    case Pointwise::HardSwish: return v < -3.f ? 0.f : v <= 3.f ? g * (v / 3.f + 0.5f) : g;
    case Pointwise::Tanh: {
      const float t = std::tanh(v);
      return g * (1.f - t * t);
    }
    case Pointwise::Sigmoid: {
      const float s = 1.f / (1.f + std::exp(-v));
      return g * s * (1.f - s);
    }
    case Pointwise::Softsign: {
      const float d = 1.f + std::fabs(v);
      return g / (d * d);
    }
    case Pointwise::Mish: {
      const float t = std::tanh(v > 20.f ? v : std::log1p(std::exp(v)));
      const float s = 1.f / (1.f + std::exp(-v));
      return g * (t + v * s * (1.f - t * t));
    }
  }
  return g;
}

Tensor pointwise_backward(const Tensor& dy, const Tensor& x, Pointwise f) {
  if (precision() == Precision::Reference) return ref::pointwise_backward(dy, x, f);
  return masked_backward("pointwise_backward", dy, x, [f](float g, float v) { return pointwise_grad(g, v, f); });
}

Tensor geglu_backward(const Tensor& dy, const Tensor& x) {
  if (precision() == Precision::Reference) return ref::geglu_backward(dy, x);
  profile::Scope prof([] { return std::string("geglu_backward"); });
  const int64_t D = check_geglu(dy, x), rows = D ? dy.numel() / D : 0;
  Tensor gf = dy.as_f32(), xf = x.as_f32();
  Tensor dx = Tensor::empty(x.shape());
#pragma omp parallel for schedule(static) if (x.numel() > kParallelMin)
  for (int64_t r = 0; r < rows; ++r)
    HWY_DYNAMIC_DISPATCH(simd_backward::GegluBackwardImpl)(gf.f32() + r * D, xf.f32() + r * 2 * D,
                                                            dx.f32() + r * 2 * D, size_t(D));
  return dx;
}

}  // namespace pigment::ops
#endif  // HWY_ONCE
