// The same algorithms as SLEEF's single-precision exp (Cody-Waite reduction by ln 2, a degree-6 polynomial, FMA) and
// 1-ulp log (reduction to m in [0.75, 1.5), atanh series in double-float arithmetic), written out in scalar form:
// every operation is the float32 operation (or fused multiply-add) the vector code performs, in the same order.
#include "sampling/torch_float_math.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace pigment::torch_math {

namespace {

// A float32 value held as an unevaluated sum hi + lo.
struct F2 {
  float hi, lo;
};

// x + y exactly (any order of magnitude).
F2 two_sum(float x, float y) {
  const float s = x + y;
  const float v = s - x;
  return {s, (x - (s - v)) + (y - v)};
}

// (x.hi + x.lo) + (y.hi + y.lo), for |x| >= |y|.
F2 add_ff(F2 x, F2 y) {
  const float s = x.hi + y.hi;
  return {s, (((x.hi - s) + y.hi) + x.lo) + y.lo};
}

F2 add_f(F2 x, float y) {
  const float s = x.hi + y;
  return {s, ((x.hi - s) + y) + x.lo};
}

F2 mul_f(F2 x, float y) {
  const float p = x.hi * y;
  return {p, std::fma(x.lo, y, std::fma(x.hi, y, -p))};
}

F2 div_ff(F2 n, F2 d) {
  const float t = 1.0f / d.hi;
  const float q = n.hi * t;
  const float u = std::fma(t, n.hi, -q);
  float lo = std::fma(-d.lo, t, std::fma(-d.hi, t, 1.0f));
  lo = std::fma(q, lo, std::fma(n.lo, t, u));
  return {q, lo};
}

int exponent_field(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return int((b >> 23) & 0xff) - 0x7f;
}

}  // namespace

float expf(float d) {
  constexpr float kInvLn2 = 1.442695040888963407359924681001892137426645954152985934135449406931f;
  constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.428606765330187045e-06f;
  const int q = int(std::nearbyint(d * kInvLn2));  // round half to even, as the vector conversion does
  float s = std::fma(float(q), -kLn2Hi, d);
  s = std::fma(float(q), -kLn2Lo, s);
  float u = 0.000198527617612853646278381f;
  u = std::fma(u, s, 0.00139304355252534151077271f);
  u = std::fma(u, s, 0.00833336077630519866943359f);
  u = std::fma(u, s, 0.0416664853692054748535156f);
  u = std::fma(u, s, 0.166666671633720397949219f);
  u = std::fma(u, s, 0.5f);
  u = 1.0f + std::fma(s * s, u, s);
  u = std::ldexp(u, q);
  if (d < -104) u = 0;
  if (d > 100) u = std::numeric_limits<float>::infinity();
  return std::isnan(d) ? d : u;
}

float logf(float d) {
  if (std::isnan(d) || d < 0) return std::numeric_limits<float>::quiet_NaN();
  if (d == 0) return -std::numeric_limits<float>::infinity();
  if (std::isinf(d)) return d;
  const bool tiny = d < std::numeric_limits<float>::min();
  if (tiny) d *= 18446744073709551616.0f;  // 2^64
  int e = exponent_field(d * (1.0f / 0.75f));
  const float m = std::ldexp(d, -e);  // in [0.75, 1.5)
  if (tiny) e -= 64;
  F2 s = mul_f({0.69314718246459960938f, -1.904654323148236017e-09f}, float(e));
  const F2 x = div_ff(two_sum(-1.0f, m), two_sum(1.0f, m));
  const float x2 = x.hi * x.hi;
  float t = 0.3027294874f;
  t = std::fma(t, x2, 0.3996108174f);
  t = std::fma(t, x2, 0.6666694880f);
  s = add_ff(s, {x.hi * 2, x.lo * 2});
  s = add_f(s, (x2 * x.hi) * t);
  return s.hi + s.lo;
}

}  // namespace pigment::torch_math
