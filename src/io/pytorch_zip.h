// PyTorch zip checkpoints (torch.save since 1.6: .ckpt, .pt, .bin): a zip archive holding archive/data.pkl (a
// pickle describing the object) and archive/data/<key> (one raw little-endian record per storage). The pickle is
// read by the restricted unpickler (io/unpickler.h), so nothing in the file is ever executed. Every storage is
// checked against its record and every tensor view against its storage when the file is opened; tensor data is
// only touched when a tensor is asked for. Contiguous tensors of uncompressed records are views into the mapped
// file; others are copied once.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/unpickler.h"

namespace pigment {

class PytorchZip {
 public:
  static PytorchZip open(const std::string& path);
  // Parses a buffer kept alive by `owner`; `label` names it in errors (a path, or "<memory>").
  static PytorchZip parse(std::shared_ptr<const void> owner, const uint8_t* bytes, size_t size,
                          const std::string& label);

  const std::string& label() const;
  // The unpickled object: adapters read non-tensor fields from it (layer_structure, string_to_token, ...).
  const pickle::Value& root() const;
  // A Kind::Tensor node of root() as a tensor (a view into the file or a contiguous copy). Thread-safe.
  Tensor tensor(const pickle::Value& node) const;

  // Tensors under dotted names ("a.b.0.c"; int dict keys such as a hypernetwork's 320 become "320"). For
  // Lightning / original SD checkpoints (a top-level dict whose 'state_dict' is a dict) only that dict is
  // flattened, without the 'state_dict.' level, so names read "model.diffusion_model....".
  std::vector<std::pair<std::string, const pickle::Value*>> tensor_nodes() const;
  std::map<std::string, Tensor> tensors() const;
  // Top-level entries holding a scalar, a string or a short list of scalars, as text (strings unquoted).
  std::map<std::string, std::string> metadata() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// True when the bytes start like a zip archive (a local file header or an empty archive's end record).
bool looks_like_zip(const uint8_t* bytes, size_t size);
// True when the bytes start like torch.save's pre-1.6 format (a protocol-2 pickle of its magic number).
bool looks_like_legacy_torch(const uint8_t* bytes, size_t size);

}  // namespace pigment
