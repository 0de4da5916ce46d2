// Philox4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3") as curand implements it, driven
// the way PyTorch's CUDA distribution kernels drive it, so `torch.randn(..., device='cuda')` seeds reproduce.
#include <cmath>

#include "sampling/rng_cuda.h"

namespace pigment {

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, uint64_t key) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(kM0) * c[0], p1 = uint64_t(kM1) * c[2];
    c = {uint32_t(p1 >> 32) ^ c[1] ^ k0, uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k1, uint32_t(p0)};
    k0 += kW0;
    k1 += kW1;
  }
  return c;
}

namespace {

constexpr uint32_t kBlock = 256;   // PyTorch's block_size_bound
constexpr uint32_t kUnroll = 4;    // four values per curand4 call (float)
constexpr float kInv2Pow32 = 2.3283064e-10f;            // curand's CURAND_2POW32_INV
constexpr float kInv2Pow32x2Pi = 2.3283064e-10f * 6.2831855f;  // CURAND_2POW32_INV_2PI

float curand_uniform(uint32_t x) { return std::fma(float(x), kInv2Pow32, kInv2Pow32 / 2.0f); }

// curand's Box-Muller on two 32-bit outputs: (s·sin v, s·cos v).
void curand_box_muller(uint32_t x, uint32_t y, float& a, float& b) {
  const float u = std::fma(float(x), kInv2Pow32, kInv2Pow32 / 2.0f);
  const float v = std::fma(float(y), kInv2Pow32x2Pi, kInv2Pow32x2Pi / 2.0f);
  const float s = std::sqrt(-2.0f * std::log(u));
  a = float(double(s) * std::sin(double(v)));
  b = float(double(s) * std::cos(double(v)));
}

class CudaGenerator : public Generator {
 public:
  CudaGenerator(uint64_t seed, CudaDeviceShape dev) : seed_(seed), dev_(dev) {
    PIG_CHECK(dev.sm_count >= 1 && dev.max_threads_per_sm >= kBlock, "cuda generator: invalid device shape");
  }

  Tensor randn(const Shape& shape) override {
    return draw(shape, [](const std::array<uint32_t, 4>& r, float* out) {
      curand_box_muller(r[0], r[1], out[0], out[1]);
      curand_box_muller(r[2], r[3], out[2], out[3]);
    });
  }

  Tensor rand(const Shape& shape) override {
    return draw(shape, [](const std::array<uint32_t, 4>& r, float* out) {
      for (int i = 0; i < 4; ++i) {
        const float v = curand_uniform(r[i]);
        out[i] = v == 1.0f ? 0.0f : v;  // PyTorch flips curand's (0, 1] to [0, 1)
      }
    });
  }

 private:
  // The grid-stride kernel: thread `idx` owns subsequence idx; its k-th curand4 call fills elements
  // idx + stride·(4k + i) for i < 4, stride = threads in the grid.
  template <typename Transform>
  Tensor draw(const Shape& shape, Transform transform) {
    Tensor t = Tensor::empty(shape);
    float* d = t.f32();
    const uint64_t n = uint64_t(t.numel());
    if (n == 0) return t;
    const uint64_t max_grid = uint64_t(dev_.sm_count) * (dev_.max_threads_per_sm / kBlock);
    const uint64_t grid = std::min<uint64_t>((n + kBlock - 1) / kBlock, max_grid);
    const uint64_t stride = grid * kBlock;
    const uint64_t calls = (n - 1) / (stride * kUnroll) + 1;
    const uint64_t offset = offset_;
    offset_ += calls * 4;  // a multiple of 4 already, as philox_cuda_state requires
    const uint64_t threads = std::min<uint64_t>(stride, n);
    for (uint64_t idx = 0; idx < threads; ++idx) {
      for (uint64_t k = 0; k < calls; ++k) {
        const uint64_t base = idx + k * stride * kUnroll;
        if (base >= n) break;
        // Counter: low 64 bits = offset / 4 + k, high 64 bits = subsequence.
        const uint64_t lo = offset / 4 + k;
        std::array<uint32_t, 4> ctr = {uint32_t(lo), uint32_t(lo >> 32), uint32_t(idx), uint32_t(idx >> 32)};
        float vals[4];
        transform(philox4x32_10(ctr, seed_), vals);
        for (uint64_t i = 0; i < kUnroll; ++i) {
          const uint64_t li = base + stride * i;
          if (li < n) d[li] = vals[i];
        }
      }
    }
    return t;
  }

  uint64_t seed_;
  CudaDeviceShape dev_;
  uint64_t offset_ = 0;
};

}  // namespace

std::unique_ptr<Generator> make_cuda_generator(uint64_t seed, CudaDeviceShape device) {
  return std::make_unique<CudaGenerator>(seed, device);
}

}  // namespace pigment
