// A restricted unpickler for the data.pkl of PyTorch checkpoints. It rebuilds plain data (None, bool, int, float,
// str, bytes, list, tuple, dict / OrderedDict) and tensor descriptions (storage reference + offset + size +
// stride); it never executes anything. Globals are resolved against a fixed allow-list (torch's tensor rebuild
// functions, typed storages, torch.Size, collections.OrderedDict, and a few inert data types that real Lightning
// checkpoints carry); any other global (os.system, builtins.eval, ...) is refused with an error naming it.
// The machine is iterative with bounded stack, memo and value counts, so hostile input cannot recurse or balloon.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace pigment::pickle {

enum class Kind : uint8_t {
  None, Bool, Int, Float, Str, Bytes, List, Tuple, Dict,
  Global,   // an allowed class or function reference (only meaningful as a callee or a dict key)
  Storage,  // a persistent_load reference: ('storage', <type>, key, location, numel)
  Tensor,   // _rebuild_tensor_v2 / _rebuild_parameter: a strided view of a storage
  Opaque,   // an inert object we keep but do not interpret (numpy scalars, Lightning callback types)
};

enum class GlobalId : uint8_t {
  None, OrderedDict, RebuildTensorV2, RebuildParameter, RebuildParameterWithState, TorchSize, Storage,
  CodecsEncode, NumpyScalar, NumpyDtype, LightningModelCheckpoint,
};

struct Value;

struct StorageRef {
  std::string key;  // the zip record is archive/data/<key>
  DType dtype = DType::F32;
  int64_t numel = 0;
  std::string location;  // "cpu", "cuda:0", ...: informational only
};

struct TensorRef {
  const Value* storage = nullptr;  // Kind::Storage
  int64_t offset = 0;              // in elements
  Shape size;
  std::vector<int64_t> stride;  // in elements
  bool requires_grad = false;
  bool is_parameter = false;
  bool contiguous() const;
};

struct Value {
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // Str, Bytes, Global ("module.name"), Opaque (its type)
  GlobalId global = GlobalId::None;
  DType storage_dtype = DType::F32;        // for Global == Storage
  std::vector<Value*> items;               // List, Tuple (and Opaque arguments)
  std::vector<std::pair<Value*, Value*>> entries;  // Dict, in insertion order (keys unique)
  std::unordered_map<std::string, size_t> index;   // Dict: canonical key → entry
  bool ordered = false;                            // Dict built by collections.OrderedDict
  Value* attrs = nullptr;                          // state given by BUILD (OrderedDict._metadata), not interpreted
  StorageRef storage;                              // Kind::Storage
  TensorRef tensor;                                // Kind::Tensor

  bool is_container() const { return kind == Kind::List || kind == Kind::Tuple || kind == Kind::Dict; }
  // Dict lookups by str or int key; nullptr when absent or not a dict.
  const Value* get(std::string_view key) const;
  const Value* get(int64_t key) const;
  // A short Python-like rendering (bounded length, nesting and item count) for messages and metadata.
  std::string repr(size_t max_len = 200) const;
};

// Canonical key for dict lookups, equal exactly when Python's keys would be: 1 and "1" differ, while 1, 1.0 and
// True are one key. Throws for unhashable keys (lists, dicts).
std::string dict_key(const Value& v);

struct Limits {
  size_t max_values = size_t(1) << 21;      // objects created
  size_t max_stack = size_t(1) << 20;       // stack depth + mark depth
  size_t max_memo = size_t(1) << 22;        // memo entries
  size_t max_string = size_t(256) << 20;    // one str/bytes
  size_t max_container = size_t(1) << 24;   // items in one list/tuple/dict
};

// The result of unpickling: the root value and the arena that owns every value (cycles are harmless).
class Document {
 public:
  const Value& root() const { return *root_; }
  size_t size() const { return arena_.size(); }
  // Every Kind::Storage value, one per key, in order of first appearance.
  const std::vector<const Value*>& storages() const { return storages_; }

 private:
  friend class Unpickler;
  std::vector<std::unique_ptr<Value>> arena_;
  Value* root_ = nullptr;
  std::vector<const Value*> storages_;
};

// Parses `size` bytes of pickle (protocols 0-5, the opcode subset torch.save and plain data need).
// `label` names the source in errors ("model.ckpt: data.pkl"). Throws pigment::Error.
std::shared_ptr<const Document> unpickle(const uint8_t* data, size_t size, const std::string& label,
                                         const Limits& limits = {});

// Tensors reachable from `root` through dicts, lists and tuples, with dotted names ("a.b.0.c"). Dict keys that
// are str or int name a level; other keys are rendered with repr(). Cycles and nesting deeper than `max_depth`
// are errors; the same tensor reachable under two names appears twice. Names that collide are an error.
std::vector<std::pair<std::string, const Value*>> flatten_tensors(const Value& root, const std::string& label,
                                                                  int max_depth = 256);

}  // namespace pigment::pickle
