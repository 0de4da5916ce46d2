// Named weights as model code sees them: one naming (diffusers / transformers names, per component), whatever
// file layout they came from. A Weights is a view with a name prefix; lookups check presence and shape and fail
// with a message that names the source file and the tensor.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace pigment {

using TensorMap = std::map<std::string, Tensor>;

class Weights {
 public:
  Weights() = default;
  Weights(std::shared_ptr<const TensorMap> all, std::string source, std::string prefix = "")
      : all_(std::move(all)), source_(std::move(source)), prefix_(std::move(prefix)) {}

  bool has(const std::string& name) const { return all_ && all_->count(prefix_ + name) != 0; }
  // The tensor `prefix + name` (in its file dtype). When `expect` is given the shape must match it.
  Tensor get(const std::string& name, const Shape& expect = {}) const {
    PIG_CHECK(all_, source_, ": no weights loaded (looking for '", prefix_ + name, "')");
    auto it = all_->find(prefix_ + name);
    PIG_CHECK(it != all_->end(), source_, ": missing tensor '", prefix_ + name, "'");
    PIG_CHECK(expect.empty() || it->second.shape() == expect, source_, ": tensor '", prefix_ + name, "' has shape ",
              shape_str(it->second.shape()), ", expected ", shape_str(expect));
    return it->second;
  }
  // Weights under "prefix.name.".
  Weights sub(const std::string& name) const { return Weights(all_, source_, prefix_ + name + "."); }
  const std::string& source() const { return source_; }
  const std::string& prefix() const { return prefix_; }
  const TensorMap& all() const { return *all_; }

 private:
  std::shared_ptr<const TensorMap> all_;
  std::string source_;
  std::string prefix_;
};

}  // namespace pigment
