// A tensor: shape, element type and a contiguous (row-major, NCHW as PyTorch) block of memory that it owns or
// that it views (for example inside a memory-mapped checkpoint; the owner is kept alive by shared ownership).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace pigment {

using Shape = std::vector<int64_t>;

// Which value of an autograd tape (ops/autograd.h) a tensor is, if any: copies and reshapes share it (same memory,
// same value); new memory (to, clone) and views of part of the memory (slice0) do not.
struct GradTag {
  uint64_t tape = 0;  // the tape's serial number; 0: not recorded
  int64_t node = -1;
};
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  // Uninitialised memory, 64-byte aligned.
  static Tensor empty(Shape shape, DType dtype = DType::F32);
  static Tensor zeros(Shape shape, DType dtype = DType::F32);
  static Tensor full(Shape shape, float value);
  static Tensor from_vector(Shape shape, const std::vector<float>& values);
  // A view of memory kept alive by `owner` (no copy).
  static Tensor view(std::shared_ptr<const void> owner, const void* data, Shape shape, DType dtype);

  bool defined() const { return dtype_set_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return int(shape_.size()); }
  // Size of dimension i; negative i counts from the end.
  int64_t dim(int i) const;
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  size_t nbytes() const { return size_t(numel_) * dtype_size(dtype_); }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  float* f32();
  const float* f32() const;
  template <typename T>
  T* data() { return static_cast<T*>(data_); }
  template <typename T>
  const T* data() const { return static_cast<const T*>(data_); }

  // Same memory, new shape (element counts must agree; one dimension may be -1).
  Tensor reshape(Shape shape) const;
  // A copy converted to dtype (a copy even when the dtype is the same).
  Tensor to(DType dtype) const;
  // Float32 data: this tensor itself if it is float32, else a converted copy.
  Tensor as_f32() const;
  Tensor clone() const;
  // Rows [begin, end) of the first dimension, as a view.
  Tensor slice0(int64_t begin, int64_t end) const;
  std::vector<float> to_vector() const;
  // What keeps the memory alive (null for views made without an owner); lets caches track the memory's lifetime.
  const std::shared_ptr<const void>& owner() const { return owner_; }
  const GradTag& grad_tag() const { return grad_tag_; }
  void set_grad_tag(GradTag tag) { grad_tag_ = tag; }

 private:
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::F32;
  bool dtype_set_ = false;
  std::shared_ptr<const void> owner_;
  void* data_ = nullptr;
  GradTag grad_tag_;
};

}  // namespace pigment
