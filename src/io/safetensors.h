// safetensors: 8-byte little-endian header length N, N bytes of JSON, then raw little-endian data.
// Opened files are memory-mapped and tensors are zero-copy views. Everything the format requires is validated
// before any data is touched.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/mapped_file.h"

namespace pigment {

struct SafeTensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range relative to the start of the data area
};

class SafeTensors {
 public:
  static SafeTensors open(const std::string& path);
  // Parses a buffer kept alive by `owner`; `label` names it in errors (a path, or "<memory>").
  static SafeTensors parse(std::shared_ptr<const void> owner, const uint8_t* bytes, size_t size,
                           const std::string& label);

  const std::vector<SafeTensorsEntry>& entries() const { return entries_; }  // in file order of offsets
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // A view into the file; throws naming the file and tensor when absent.
  Tensor get(const std::string& name) const;
  const std::string& label() const { return label_; }

 private:
  std::string label_;
  std::shared_ptr<const void> owner_;
  const uint8_t* data_ = nullptr;  // start of the data area
  std::vector<SafeTensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
// Writes atomically (to a temporary file renamed into place), so a failure never leaves half a file.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace pigment
