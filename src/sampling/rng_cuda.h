// PyTorch's CUDA generator reproduced on the CPU: Philox4x32-10 keyed by the seed, curand's per-thread
// subsequences and PyTorch's per-call offset bookkeeping for its grid-stride distribution kernels.
#pragma once
#include <array>
#include <cstdint>
#include <memory>

#include "sampling/rng.h"

namespace pigment {

// The launch geometry PyTorch derives from the device: the grid is capped at sm_count · (threads_per_sm / 256)
// blocks, which changes the values of tensors larger than 256 · that cap. The defaults are an H100 / H200
// (132 SMs, 2048 threads per SM); smaller tensors (every SD latent up to 4×128×128 on any recent GPU) do not depend
// on them.
struct CudaDeviceShape {
  uint32_t sm_count = 132;
  uint32_t max_threads_per_sm = 2048;
};

std::unique_ptr<Generator> make_cuda_generator(uint64_t seed, CudaDeviceShape device = {});

// One Philox4x32-10 block: four 32-bit outputs for a 128-bit counter (x lowest word) and a 64-bit key.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, uint64_t key);

}  // namespace pigment
