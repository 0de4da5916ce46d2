// Losses of the trainers and their gradients. mse's value is in embedding.cc with the other reductions. ref:: works
// element by element in double. Fast: per-sample scale factors computed once in double, then (a − t)·scale per
// element in float; the weighted loss sums fixed-size chunks in double in parallel and adds the chunk sums in order,
// so its bits do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <string>

#include "ops/backward.h"
#include "ops/profile.h"

namespace pigment::ops {

namespace {
void check_pair(const char* op, const Tensor& a, const Tensor& b) {
  PIG_CHECK(a.shape() == b.shape(), op, ": shapes differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
}

// Checks a batch [B, ...] against its weights; returns B.
int64_t check_weighted(const char* op, const Tensor& a, const Tensor& t, const std::vector<float>& w) {
  check_pair(op, a, t);
  PIG_CHECK(a.ndim() >= 1 && a.dim(0) > 0, op, ": expected a batch [B, ...], got ", shape_str(a.shape()));
  PIG_CHECK(int64_t(w.size()) == a.dim(0), op, ": ", w.size(), " weights for a batch of ", a.dim(0));
  return a.dim(0);
}
}  // namespace

namespace ref {
Tensor mse_backward(const Tensor& a, const Tensor& b, float dloss) {
  check_pair("mse_backward", a, b);
  Tensor af = a.as_f32(), bf = b.as_f32();
  Tensor da = Tensor::empty(a.shape());
  const double n = double(a.numel());
  for (int64_t i = 0; i < a.numel(); ++i)
    da.f32()[i] = float(2.0 * (double(af.f32()[i]) - bf.f32()[i]) * dloss / n);
  return da;
}

float weighted_mse(const Tensor& a, const Tensor& t, const std::vector<float>& w) {
  const int64_t B = check_weighted("weighted_mse", a, t, w), M = a.numel() / B;
  Tensor af = a.as_f32(), tf = t.as_f32();
  double loss = 0;
  for (int64_t b = 0; b < B; ++b) {
    double s = 0;
    for (int64_t i = b * M; i < (b + 1) * M; ++i) {
      const double d = double(af.f32()[i]) - tf.f32()[i];
      s += d * d;
    }
    if (M) loss += double(w[size_t(b)]) * (s / double(M));
  }
  return float(loss / double(B));
}

Tensor weighted_mse_backward(const Tensor& a, const Tensor& t, const std::vector<float>& w, float dloss) {
  const int64_t B = check_weighted("weighted_mse_backward", a, t, w), M = a.numel() / B;
  Tensor af = a.as_f32(), tf = t.as_f32();
  Tensor da = Tensor::empty(a.shape());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = b * M; i < (b + 1) * M; ++i)
      da.f32()[i] = float(2.0 * double(w[size_t(b)]) * dloss * (double(af.f32()[i]) - tf.f32()[i]) /
                          (double(B) * double(M)));
  return da;
}

float l1(const Tensor& a, const Tensor& b) {
  check_pair("l1", a, b);
  Tensor af = a.as_f32(), bf = b.as_f32();
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += std::abs(double(af.f32()[i]) - bf.f32()[i]);
  return a.numel() ? float(s / double(a.numel())) : 0.f;
}

Tensor l1_backward(const Tensor& a, const Tensor& b, float dloss) {
  check_pair("l1_backward", a, b);
  Tensor af = a.as_f32(), bf = b.as_f32();
  Tensor da = Tensor::empty(a.shape());
  const double g = double(dloss) / double(std::max<int64_t>(1, a.numel()));
  for (int64_t i = 0; i < a.numel(); ++i) {
    const float d = af.f32()[i] - bf.f32()[i];
    da.f32()[i] = float(d > 0 ? g : d < 0 ? -g : 0.0);
  }
  return da;
}
}  // namespace ref

namespace {
constexpr int64_t kChunk = 16384;  // elements per task
constexpr int64_t kParallelMin = 65536;

// da[i] = (a[i] − b[i])·scale[i / M] for the n elements; `scale` per block of M.
Tensor scaled_difference(const Tensor& a, const Tensor& b, const std::vector<float>& scale, int64_t M) {
  Tensor af = a.as_f32(), bf = b.as_f32();
  Tensor da = Tensor::empty(a.shape());
  const float *pa = af.f32(), *pb = bf.f32();
  float* o = da.f32();
  const int64_t n = a.numel(), chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end;) {  // runs of one sample, so that the inner loop vectorises
      const int64_t stop = std::min(end, (i / M + 1) * M);
      const float s = scale[size_t(i / M)];
      for (; i < stop; ++i) o[i] = (pa[i] - pb[i]) * s;
    }
  }
  return da;
}
}  // namespace

Tensor mse_backward(const Tensor& a, const Tensor& b, float dloss) {
  profile::Scope prof([] { return std::string("mse_backward"); });
  check_pair("mse_backward", a, b);
  if (a.numel() == 0) return Tensor::empty(a.shape());
  return scaled_difference(a, b, {float(2.0 * dloss / double(a.numel()))}, a.numel());
}

float weighted_mse(const Tensor& a, const Tensor& t, const std::vector<float>& w) {
  profile::Scope prof([] { return std::string("weighted_mse"); });
  const int64_t B = check_weighted("weighted_mse", a, t, w), M = a.numel() / B;
  if (M == 0) return 0.f;
  Tensor af = a.as_f32(), tf = t.as_f32();
  const float *pa = af.f32(), *pt = tf.f32();
  // Chunks never straddle two samples: each sample is cut into pieces of at most kChunk.
  const int64_t per_sample = (M + kChunk - 1) / kChunk, tasks = B * per_sample;
  std::vector<double> partial(static_cast<size_t>(tasks));
#pragma omp parallel for schedule(static) if (a.numel() > kParallelMin)
  for (int64_t k = 0; k < tasks; ++k) {
    const int64_t b = k / per_sample, begin = b * M + (k % per_sample) * kChunk;
    const int64_t end = std::min((b + 1) * M, begin + kChunk);
    double p[4] = {};  // interleaved partial sums: vectorisable, in a fixed order
    int64_t i = begin;
    for (; i + 4 <= end; i += 4)
      for (int q = 0; q < 4; ++q) {
        const double d = double(pa[i + q]) - pt[i + q];
        p[q] += d * d;
      }
    for (; i < end; ++i) {
      const double d = double(pa[i]) - pt[i];
      p[0] += d * d;
    }
    partial[size_t(k)] = (p[0] + p[1]) + (p[2] + p[3]);
  }
  double loss = 0;
  for (int64_t b = 0; b < B; ++b) {
    double s = 0;
    for (int64_t k = b * per_sample; k < (b + 1) * per_sample; ++k) s += partial[size_t(k)];
    loss += double(w[size_t(b)]) * (s / double(M));
  }
  return float(loss / double(B));
}

Tensor weighted_mse_backward(const Tensor& a, const Tensor& t, const std::vector<float>& w, float dloss) {
  profile::Scope prof([] { return std::string("weighted_mse_backward"); });
  const int64_t B = check_weighted("weighted_mse_backward", a, t, w), M = a.numel() / B;
  if (M == 0) return Tensor::empty(a.shape());
  std::vector<float> scale(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b)
    scale[size_t(b)] = float(2.0 * double(w[size_t(b)]) * dloss / (double(B) * double(M)));
  return scaled_difference(a, t, scale, M);
}

// The L1 loss is a small part of a VAE step: the reference is fast enough.
float l1(const Tensor& a, const Tensor& b) { return ref::l1(a, b); }
Tensor l1_backward(const Tensor& a, const Tensor& b, float dloss) { return ref::l1_backward(a, b, dloss); }

}  // namespace pigment::ops
