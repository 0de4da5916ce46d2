#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/allocator.h"

namespace pigment {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    PIG_CHECK(d >= 0, "negative dimension in shape ", shape_str(s));
    PIG_CHECK(d == 0 || n <= (int64_t(1) << 50) / d, "shape ", shape_str(s), " is too large");
    n *= d;
  }
  return n;
}

Tensor Tensor::empty(Shape shape, DType dtype) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.dtype_set_ = true;
  std::shared_ptr<void> p;
  try {
    p = allocate(t.nbytes());  // core/allocator.h: large blocks are mapped with huge pages and reused
  } catch (const Error&) {
    fail("out of memory allocating ", t.nbytes(), " bytes for a tensor of shape ", shape_str(t.shape_));
  }
  t.data_ = p.get();
  t.owner_ = std::move(p);
  return t;
}

Tensor Tensor::zeros(Shape shape, DType dtype) {
  Tensor t = empty(std::move(shape), dtype);
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::full(Shape shape, float value) {
  Tensor t = empty(std::move(shape));
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel_; ++i) p[i] = value;
  return t;
}

Tensor Tensor::from_vector(Shape shape, const std::vector<float>& values) {
  Tensor t = empty(std::move(shape));
  PIG_CHECK(int64_t(values.size()) == t.numel_, "from_vector: ", values.size(), " values for shape ",
            shape_str(t.shape_));
  std::memcpy(t.data_, values.data(), values.size() * 4);
  return t;
}

Tensor Tensor::view(std::shared_ptr<const void> owner, const void* data, Shape shape, DType dtype) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.dtype_set_ = true;
  t.owner_ = std::move(owner);
  t.data_ = const_cast<void*>(data);
  return t;
}

int64_t Tensor::dim(int i) const {
  int n = ndim();
  if (i < 0) i += n;
  PIG_CHECK(i >= 0 && i < n, "dimension ", i, " out of range for shape ", shape_str(shape_));
  return shape_[i];
}

float* Tensor::f32() {
  PIG_CHECK(dtype_ == DType::F32, "expected a float32 tensor, got ", dtype_name(dtype_));
  return static_cast<float*>(data_);
}

const float* Tensor::f32() const {
  PIG_CHECK(dtype_ == DType::F32, "expected a float32 tensor, got ", dtype_name(dtype_));
  return static_cast<const float*>(data_);
}

Tensor Tensor::reshape(Shape shape) const {
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      PIG_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(shape));
      infer = int(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    PIG_CHECK(known > 0 && numel_ % known == 0, "reshape: cannot infer ", shape_str(shape), " from ",
              shape_str(shape_));
    shape[infer] = numel_ / known;
  }
  PIG_CHECK(shape_numel(shape) == numel_, "reshape: ", shape_str(shape_), " has ", numel_,
            " elements, cannot become ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  Tensor t = empty(shape_, dtype);
  if (dtype == dtype_) {
    std::memcpy(t.data_, data_, nbytes());
  } else if (dtype == DType::F32) {
    convert_to_f32(dtype_, data_, t.f32(), size_t(numel_));
  } else {
    Tensor f = as_f32();
    convert_from_f32(dtype, f.f32(), t.data_, size_t(numel_));
  }
  return t;
}

Tensor Tensor::as_f32() const { return dtype_ == DType::F32 ? *this : to(DType::F32); }

Tensor Tensor::clone() const { return to(dtype_); }

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  PIG_CHECK(ndim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "slice0: [", begin, ", ", end,
            ") out of range for shape ", shape_str(shape_));
  Tensor t = *this;
  int64_t row = shape_[0] ? numel_ / shape_[0] : 0;
  t.shape_[0] = end - begin;
  t.numel_ = row * (end - begin);
  t.data_ = static_cast<char*>(data_) + size_t(begin * row) * dtype_size(dtype_);
  t.grad_tag_ = {};
  return t;
}

std::vector<float> Tensor::to_vector() const {
  Tensor f = as_f32();
  return std::vector<float>(f.f32(), f.f32() + numel_);
}

}  // namespace pigment
