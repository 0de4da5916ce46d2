// Random number generators that reproduce PyTorch's bit for bit, so a seed gives the picture it gives in
// diffusers (CPU generator) and in AUTOMATIC1111 (CUDA generator).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace pigment {

class Generator {
 public:
  virtual ~Generator() = default;
  // torch.randn(shape, generator=g) / torch.rand(shape, generator=g), float32.
  virtual Tensor randn(const Shape& shape) = 0;
  virtual Tensor rand(const Shape& shape) = 0;
};

// "cpu": torch.Generator('cpu').manual_seed(seed) (mt19937); "cuda": PyTorch's CUDA Philox4x32-10 generator.
std::unique_ptr<Generator> make_generator(const std::string& kind, uint64_t seed);

}  // namespace pigment
