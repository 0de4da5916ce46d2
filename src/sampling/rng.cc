// PyTorch's CPU generator (mt19937) with the exact sampling paths of torch.rand / torch.randn on float32 tensors,
// and make_generator for both generator kinds.
#include "sampling/rng.h"

#include <cmath>
#include <random>

#include "sampling/rng_cuda.h"

namespace pigment {

namespace {

class CpuGenerator : public Generator {
 public:
  // torch seeds its mt19937 with the low 32 bits of the 64-bit seed (standard MT init).
  explicit CpuGenerator(uint64_t seed) : engine_(uint32_t(seed & 0xffffffffu)) {}

  Tensor rand(const Shape& shape) override {
    Tensor t = Tensor::empty(shape);
    float* d = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) d[i] = uniform_f32();
    return t;
  }

  Tensor randn(const Shape& shape) override {
    Tensor t = Tensor::empty(shape);
    float* d = t.f32();
    const int64_t n = t.numel();
    if (n >= 16) {
      // Vectorised path: uniforms for everything, Box-Muller per block of 16, the tail re-drawn as a full block.
      for (int64_t i = 0; i < n; ++i) d[i] = uniform_f32();
      for (int64_t i = 0; i + 16 <= n; i += 16) box_muller16(d + i);
      if (n % 16 != 0) {
        float* tail = d + n - 16;
        for (int i = 0; i < 16; ++i) tail[i] = uniform_f32();
        box_muller16(tail);
      }
    } else {
      for (int64_t i = 0; i < n; ++i) d[i] = float(normal_f64());
    }
    return t;
  }

 private:
  float uniform_f32() { return float(engine_() & 0xffffffu) * (1.0f / 16777216.0f); }

  double uniform_f64() {
    const uint64_t hi = engine_(), lo = engine_();
    const uint64_t v = (hi << 32) | lo;
    return double(v & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
  }

  // Scalar path: values come in pairs, the sine half is kept for the next element (even across calls).
  double normal_f64() {
    if (has_cached_) {
      has_cached_ = false;
      return cached_;
    }
    const double u1 = uniform_f64(), u2 = uniform_f64();
    const double r = std::sqrt(-2.0 * std::log(1.0 - u2));
    const double theta = 2.0 * M_PI * u1;
    cached_ = r * std::sin(theta);
    has_cached_ = true;
    return r * std::cos(theta);
  }

  static void box_muller16(float* d) {
    for (int j = 0; j < 8; ++j) {
      const float u1 = 1.0f - d[j], u2 = d[j + 8];
      const float radius = std::sqrt(-2.0f * std::log(u1));
      const float theta = 2.0f * float(M_PI) * u2;
      d[j] = radius * std::cos(theta);
      d[j + 8] = radius * std::sin(theta);
    }
  }

  std::mt19937 engine_;
  bool has_cached_ = false;
  double cached_ = 0;
};

}  // namespace

std::unique_ptr<Generator> make_generator(const std::string& kind, uint64_t seed) {
  if (kind == "cpu") return std::make_unique<CpuGenerator>(seed);
  if (kind == "cuda" || kind == "gpu") return make_cuda_generator(seed);
  fail("unknown generator kind '", kind, "'; expected cpu or cuda");
}

}  // namespace pigment
