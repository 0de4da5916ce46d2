#include "imaging/frechet_distance.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace pigment {

FeatureGaussian fit_gaussian(const std::vector<std::vector<double>>& samples) {
  PIG_CHECK(samples.size() >= 2, "Fréchet distance: a set needs at least two samples, got ", samples.size());
  const size_t d = samples[0].size();
  PIG_CHECK(d > 0, "Fréchet distance: empty feature vectors");
  for (const auto& s : samples)
    PIG_CHECK(s.size() == d, "Fréchet distance: feature vectors of ", s.size(), " and ", d, " numbers");
  FeatureGaussian g;
  g.dims = int(d);
  g.count = int(samples.size());
  g.mean.assign(d, 0.0);
  for (const auto& s : samples)
    for (size_t k = 0; k < d; ++k) g.mean[k] += s[k];
  for (auto& m : g.mean) m /= double(samples.size());
  g.centered.resize(samples.size() * d);
  for (size_t i = 0; i < samples.size(); ++i)
    for (size_t k = 0; k < d; ++k) g.centered[i * d + k] = samples[i][k] - g.mean[k];
  g.cov.assign(d * d, 0.0);
  for (size_t i = 0; i < samples.size(); ++i) {
    const double* x = &g.centered[i * d];
    for (size_t r = 0; r < d; ++r) {
      const double xr = x[r];
      if (xr == 0) continue;
      double* row = &g.cov[r * d];
      for (size_t c = r; c < d; ++c) row[c] += xr * x[c];
    }
  }
  const double inv = 1.0 / double(samples.size() - 1);
  for (size_t r = 0; r < d; ++r)
    for (size_t c = r; c < d; ++c) g.cov[c * d + r] = g.cov[r * d + c] = g.cov[r * d + c] * inv;
  return g;
}

std::vector<double> symmetric_eigen(std::vector<double> a, int n, std::vector<double>* eigenvectors) {
  PIG_CHECK(n > 0 && a.size() == size_t(n) * size_t(n), "symmetric eigen-decomposition: expected ", n, "x", n,
            " numbers, got ", a.size());
  const size_t N = size_t(n);
  auto at = [&](size_t r, size_t c) -> double& { return a[r * N + c]; };
  for (size_t r = 0; r < N; ++r)
    for (size_t c = r + 1; c < N; ++c) at(r, c) = at(c, r) = 0.5 * (at(r, c) + at(c, r));
  std::vector<double> v;
  if (eigenvectors) {
    v.assign(N * N, 0.0);
    for (size_t k = 0; k < N; ++k) v[k * N + k] = 1.0;
  }
  double total = 0;
  for (double x : a) total += x * x;
  // Cyclic Jacobi: sweep over every off-diagonal pair, rotating it to zero, until the off-diagonal part is
  // negligible against the whole matrix (it shrinks quadratically once small).
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (size_t r = 0; r < N; ++r)
      for (size_t c = r + 1; c < N; ++c) off += at(r, c) * at(r, c);
    if (off <= 1e-30 * total || off == 0) break;
    for (size_t p = 0; p + 1 < N; ++p)
      for (size_t q = p + 1; q < N; ++q) {
        const double apq = at(p, q);
        if (std::abs(apq) <= 1e-300) continue;
        // The rotation J (J_pp = J_qq = c, J_pq = s, J_qp = −s) with (JᵀAJ)_pq = 0: t = s/c solves
        // t² + 2θt − 1 = 0 with θ = (a_qq − a_pp)/(2a_pq); the smaller root keeps the rotation below 45°.
        const double theta = (at(q, q) - at(p, p)) / (2 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (size_t k = 0; k < N; ++k) {  // A·J: columns p and q
          const double akp = at(k, p), akq = at(k, q);
          at(k, p) = c * akp - s * akq;
          at(k, q) = s * akp + c * akq;
        }
        for (size_t k = 0; k < N; ++k) {  // Jᵀ·(A·J): rows p and q
          const double apk = at(p, k), aqk = at(q, k);
          at(p, k) = c * apk - s * aqk;
          at(q, k) = s * apk + c * aqk;
        }
        at(p, q) = at(q, p) = 0;
        if (eigenvectors)
          for (size_t k = 0; k < N; ++k) {
            const double vkp = v[k * N + p], vkq = v[k * N + q];
            v[k * N + p] = c * vkp - s * vkq;
            v[k * N + q] = s * vkp + c * vkq;
          }
      }
  }
  std::vector<size_t> order(N);
  for (size_t k = 0; k < N; ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return at(x, x) < at(y, y); });
  std::vector<double> w(N);
  for (size_t k = 0; k < N; ++k) w[k] = at(order[k], order[k]);
  if (eigenvectors) {
    eigenvectors->assign(N * N, 0.0);
    for (size_t r = 0; r < N; ++r)
      for (size_t k = 0; k < N; ++k) (*eigenvectors)[r * N + k] = v[r * N + order[k]];
  }
  return w;
}

std::vector<double> symmetric_sqrt(const std::vector<double>& a, int n) {
  std::vector<double> v;
  const std::vector<double> w = symmetric_eigen(a, n, &v);
  const size_t N = size_t(n);
  std::vector<double> out(N * N, 0.0);
  for (size_t k = 0; k < N; ++k) {
    const double root = std::sqrt(std::max(0.0, w[k]));
    if (root == 0) continue;
    for (size_t r = 0; r < N; ++r) {
      const double vr = v[r * N + k] * root;
      for (size_t c = 0; c < N; ++c) out[r * N + c] += vr * v[c * N + k];
    }
  }
  return out;
}

namespace {

double sum_sqrt(const std::vector<double>& eigenvalues) {
  double s = 0;
  for (double w : eigenvalues) s += std::sqrt(std::max(0.0, w));
  return s;
}

void check_same_dims(const FeatureGaussian& a, const FeatureGaussian& b) {
  PIG_CHECK(a.dims == b.dims && a.dims > 0, "Fréchet distance: sets of ", a.dims, " and ", b.dims,
            " dimensions");
}

// Σ_a^½ with Σ_b's samples: the eigenvalues of Xᵀ Σ_a X / (n_b − 1), X the d × n_b centred samples of b.
double trace_sqrt_small(const FeatureGaussian& a, const FeatureGaussian& b) {
  const size_t d = size_t(a.dims), n = size_t(b.count);
  // Y = X_bᵀ Σ_a (n × d; Σ_a symmetric), then G = Y X_b / (n − 1).
  std::vector<double> y(n * d, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const double* x = &b.centered[i * d];
    double* yi = &y[i * d];
    for (size_t r = 0; r < d; ++r) {
      const double xr = x[r];
      if (xr == 0) continue;
      const double* row = &a.cov[r * d];
      for (size_t c = 0; c < d; ++c) yi[c] += xr * row[c];
    }
  }
  std::vector<double> g(n * n);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i; j < n; ++j) {
      const double* yi = &y[i * d];
      const double* xj = &b.centered[j * d];
      double s = 0;
      for (size_t k = 0; k < d; ++k) s += yi[k] * xj[k];
      g[i * n + j] = g[j * n + i] = s / double(n - 1);
    }
  return sum_sqrt(symmetric_eigen(std::move(g), int(n)));
}

}  // namespace

double trace_sqrt_product_full(const FeatureGaussian& a, const FeatureGaussian& b) {
  check_same_dims(a, b);
  const size_t d = size_t(a.dims);
  const std::vector<double> s = symmetric_sqrt(a.cov, a.dims);
  // M = S Σ_b S.
  std::vector<double> t(d * d, 0.0), m(d * d, 0.0);
  for (size_t r = 0; r < d; ++r)
    for (size_t k = 0; k < d; ++k) {
      const double srk = s[r * d + k];
      if (srk == 0) continue;
      for (size_t c = 0; c < d; ++c) t[r * d + c] += srk * b.cov[k * d + c];
    }
  for (size_t r = 0; r < d; ++r)
    for (size_t k = 0; k < d; ++k) {
      const double trk = t[r * d + k];
      if (trk == 0) continue;
      for (size_t c = 0; c < d; ++c) m[r * d + c] += trk * s[k * d + c];
    }
  return sum_sqrt(symmetric_eigen(std::move(m), a.dims));
}

double trace_sqrt_product(const FeatureGaussian& a, const FeatureGaussian& b) {
  check_same_dims(a, b);
  // Tr((Σ_aΣ_b)^½) = Tr((Σ_bΣ_a)^½): use the set with fewer samples as the small side, if it is below the dimension.
  const bool b_small = b.count - 1 < b.dims, a_small = a.count - 1 < a.dims;
  if (b_small && (!a_small || b.count <= a.count)) return trace_sqrt_small(a, b);
  if (a_small) return trace_sqrt_small(b, a);
  return trace_sqrt_product_full(a, b);
}

double frechet_distance(const FeatureGaussian& a, const FeatureGaussian& b) {
  check_same_dims(a, b);
  const size_t d = size_t(a.dims);
  double mean_term = 0, trace = 0;
  for (size_t k = 0; k < d; ++k) {
    mean_term += (a.mean[k] - b.mean[k]) * (a.mean[k] - b.mean[k]);
    trace += a.cov[k * d + k] + b.cov[k * d + k];
  }
  // Rounding can leave a tiny negative remainder for equal sets.
  return mean_term + std::max(0.0, trace - 2 * trace_sqrt_product(a, b));
}

}  // namespace pigment
