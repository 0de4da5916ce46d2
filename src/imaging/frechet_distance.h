// The Fréchet distance between two sets of feature vectors, each summarised by a Gaussian (mean, covariance), as
// FID computes it in its own feature space:
//   FD = |μ₁ − μ₂|² + Tr(Σ₁) + Tr(Σ₂) − 2·Tr((Σ₁Σ₂)^½)
// in double precision, with no external linear algebra: Tr((Σ₁Σ₂)^½) is the sum of the square roots of the
// eigenvalues of the symmetric positive semi-definite Σ₁^½ Σ₂ Σ₁^½ (Σ₁^½ from a symmetric eigen-decomposition), or,
// when the second set has fewer samples than dimensions, of the smaller n×n matrix Xᵀ Σ₁ X / (n − 1) (X: the second
// set's centred samples as columns), which has the same non-zero eigenvalues. Eigenvalues are found by cyclic Jacobi
// rotations; tiny negative ones from rounding count as 0.
#pragma once
#include <vector>

namespace pigment {

struct FeatureGaussian {
  int dims = 0, count = 0;
  std::vector<double> mean;      // dims
  std::vector<double> cov;       // dims × dims, row-major; unbiased (1/(n−1)), as numpy.cov
  std::vector<double> centered;  // count × dims: the samples minus the mean (kept for the small-sample form)
};

// At least two samples, all of the same length.
FeatureGaussian fit_gaussian(const std::vector<std::vector<double>>& samples);

// Eigenvalues (ascending) of the symmetric n×n matrix `a` (row-major; only its symmetric part is used), and, if
// `eigenvectors` is given, the matching orthonormal eigenvectors as its columns (row-major n×n): a = V·diag(w)·Vᵀ.
std::vector<double> symmetric_eigen(std::vector<double> a, int n, std::vector<double>* eigenvectors = nullptr);

// The symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues clamped to 0).
std::vector<double> symmetric_sqrt(const std::vector<double>& a, int n);

// Tr((Σ_a Σ_b)^½): through the smaller of the two forms above (b's samples when b.count − 1 < dims).
double trace_sqrt_product(const FeatureGaussian& a, const FeatureGaussian& b);
// Always through Σ_a^½ Σ_b Σ_a^½ (for tests and for when Σ_a^½ is at hand).
double trace_sqrt_product_full(const FeatureGaussian& a, const FeatureGaussian& b);

double frechet_distance(const FeatureGaussian& a, const FeatureGaussian& b);

}  // namespace pigment
