// Table lookups, sinusoidal timestep embeddings, reductions and losses. Small work: the fast ops are the reference
// code itself.
#include <cmath>
#include <cstring>

#include "ops/autograd_ops.h"
#include "ops/reference.h"

namespace pigment::ops {

namespace ref {

Tensor embedding(const Tensor& table, const std::vector<int64_t>& ids) {
  PIG_CHECK(table.ndim() == 2, "embedding: table must be [V, D], got ", shape_str(table.shape()));
  int64_t V = table.dim(0), D = table.dim(1);
  Tensor y = Tensor::empty({int64_t(ids.size()), D});
  for (size_t i = 0; i < ids.size(); ++i) {
    PIG_CHECK(ids[i] >= 0 && ids[i] < V, "embedding: id ", ids[i], " outside the table of ", V, " rows");
    convert_to_f32(table.dtype(), static_cast<const char*>(table.raw()) + ids[i] * D * dtype_size(table.dtype()),
                   y.f32() + i * D, D);
  }
  return y;
}

Tensor timestep_embedding(const std::vector<float>& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift,
                          float max_period) {
  int half = dim / 2;
  Tensor y = Tensor::zeros({int64_t(t.size()), dim});
  // As diffusers: exponent = -ln(max_period) * arange(half) / (half - shift), computed in float32.
  std::vector<float> freq(half);
  for (int i = 0; i < half; ++i) {
    float e = -std::log(max_period) * float(i);
    e = e / (float(half) - downscale_freq_shift);
    freq[i] = std::exp(e);
  }
  for (size_t r = 0; r < t.size(); ++r) {
    float* o = y.f32() + r * dim;
    for (int i = 0; i < half; ++i) {
      float a = t[r] * freq[i];
      float s = std::sin(a), c = std::cos(a);
      o[i] = flip_sin_to_cos ? c : s;
      o[half + i] = flip_sin_to_cos ? s : c;
    }
  }
  return y;
}

float sum_all(const Tensor& x) {
  Tensor xf = x.as_f32();
  double s = 0;
  for (int64_t i = 0; i < x.numel(); ++i) s += xf.f32()[i];
  return float(s);
}

float mean_all(const Tensor& x) { return x.numel() ? float(double(sum_all(x)) / x.numel()) : 0.f; }

float mse(const Tensor& a, const Tensor& b) {
  PIG_CHECK(a.shape() == b.shape(), "mse: shapes differ: ", shape_str(a.shape()), " vs ", shape_str(b.shape()));
  Tensor af = a.as_f32(), bf = b.as_f32();
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double d = double(af.f32()[i]) - bf.f32()[i];
    s += d * d;
  }
  return a.numel() ? float(s / a.numel()) : 0.f;
}

}  // namespace ref

Tensor embedding(const Tensor& table, const std::vector<int64_t>& ids) {
  if (autograd::any_needs_grad({&table})) return recorded::embedding(table, ids);
  return ref::embedding(table, ids);
}

Tensor replace_rows(const Tensor& x, const std::vector<int64_t>& at, const Tensor& rows) {
  if (autograd::any_needs_grad({&x, &rows})) return recorded::replace_rows(x, at, rows);
  PIG_CHECK(x.ndim() >= 1 && rows.ndim() == 2 && rows.dim(0) == int64_t(at.size()) && rows.dim(1) == x.dim(-1),
            "replace_rows: ", at.size(), " rows ", shape_str(rows.shape()), " for ", shape_str(x.shape()));
  const int64_t D = x.dim(-1), R = D ? x.numel() / D : 0;
  Tensor y = x.as_f32().clone();
  Tensor r = rows.as_f32();
  for (size_t i = 0; i < at.size(); ++i) {
    PIG_CHECK(at[i] >= 0 && at[i] < R, "replace_rows: row ", at[i], " outside ", R, " rows");
    std::memcpy(y.f32() + at[i] * D, r.f32() + int64_t(i) * D, size_t(D) * sizeof(float));
  }
  return y;
}
Tensor timestep_embedding(const std::vector<float>& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift,
                          float max_period) {
  return ref::timestep_embedding(t, dim, flip_sin_to_cos, downscale_freq_shift, max_period);
}
float sum_all(const Tensor& x) { return ref::sum_all(x); }
float mean_all(const Tensor& x) { return ref::mean_all(x); }
float mse(const Tensor& a, const Tensor& b) { return ref::mse(a, b); }

}  // namespace pigment::ops
