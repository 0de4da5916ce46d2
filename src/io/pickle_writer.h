// Writing pickles: an opcode-level writer (also what the unpickler's tests build hostile input with) and, over it,
// the protocol-2 pickle of a plain value tree as torch.save writes it: None, bool, int, float, str, list, tuple,
// dict / collections.OrderedDict, and tensors as torch._utils._rebuild_tensor_v2 over a persistent storage id
// ('storage', torch.<Type>Storage, key, 'cpu', numel). The globals it names are exactly those pigment's restricted
// unpickler (io/unpickler.h) allows, and the opcodes are those of protocol 2 (BINUNICODE, not protocol 4's
// SHORT_BINUNICODE), so torch.load and Python's pickle read the result. io/torch_save.h puts it into a zip archive.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace pigment::pickle {

// One opcode at a time; no checking (tests use it to write malformed pickles on purpose).
class OpcodeWriter {
 public:
  OpcodeWriter& proto(int v = 2) { return op(0x80).byte(uint8_t(v)); }
  OpcodeWriter& op(uint8_t c) { return byte(c); }
  OpcodeWriter& raw(const std::string& s) {
    out_ += s;
    return *this;
  }
  OpcodeWriter& mark() { return op('('); }
  OpcodeWriter& stop() { return op('.'); }
  OpcodeWriter& none() { return op('N'); }
  OpcodeWriter& boolean(bool b) { return op(b ? 0x88 : 0x89); }  // NEWTRUE / NEWFALSE (protocol 2)
  OpcodeWriter& empty_dict() { return op('}'); }
  OpcodeWriter& empty_list() { return op(']'); }
  OpcodeWriter& empty_tuple() { return op(')'); }
  OpcodeWriter& setitem() { return op('s'); }
  OpcodeWriter& setitems() { return op('u'); }
  OpcodeWriter& append() { return op('a'); }
  OpcodeWriter& appends() { return op('e'); }
  OpcodeWriter& tuple() { return op('t'); }
  OpcodeWriter& tuple_n(int n) { return op(uint8_t(0x84 + n)); }  // TUPLE1..TUPLE3
  OpcodeWriter& reduce() { return op('R'); }
  OpcodeWriter& build() { return op('b'); }
  OpcodeWriter& binpersid() { return op('Q'); }
  OpcodeWriter& binput(uint32_t i) { return i < 256 ? op('q').byte(uint8_t(i)) : op('r').le(i, 4); }
  OpcodeWriter& binget(uint32_t i) { return i < 256 ? op('h').byte(uint8_t(i)) : op('j').le(i, 4); }
  // BININT1 / BININT2 / BININT / LONG1: the shortest protocol-2 form, as pickle chooses.
  OpcodeWriter& integer(int64_t v) {
    if (v >= 0 && v < 256) return op('K').byte(uint8_t(v));
    if (v >= 0 && v < 65536) return op('M').le(uint64_t(v), 2);
    if (v >= INT32_MIN && v <= INT32_MAX) return op('J').le(uint64_t(uint32_t(int32_t(v))), 4);
    return op(0x8a).byte(8).le(uint64_t(v), 8);  // LONG1 (two's complement, 8 bytes)
  }
  OpcodeWriter& real(double d) {  // BINFLOAT, big-endian
    uint64_t u;
    std::memcpy(&u, &d, 8);
    op('G');
    for (int k = 7; k >= 0; --k) byte(uint8_t(u >> (8 * k)));
    return *this;
  }
  // SHORT_BINUNICODE for short strings (a protocol-4 opcode that every unpickler reads), else BINUNICODE.
  OpcodeWriter& str(const std::string& s) {
    if (s.size() < 256) return op(0x8c).byte(uint8_t(s.size())).raw(s);
    return binunicode(s);
  }
  OpcodeWriter& binunicode(const std::string& s) { return op('X').le(s.size(), 4).raw(s); }  // protocol 1+
  OpcodeWriter& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  OpcodeWriter& stack_global(const std::string& module, const std::string& name) {
    return str(module).str(name).op(0x93);
  }
  // collections.OrderedDict() on the stack.
  OpcodeWriter& ordered_dict() { return global("collections", "OrderedDict").empty_tuple().reduce(); }
  // A tensor as torch.save writes it: _rebuild_tensor_v2(persistent storage, offset, size, stride, False, {}).
  OpcodeWriter& tensor(const std::string& storage_type, const std::string& key, int64_t numel, int64_t offset,
                       const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    mark().str("storage").global("torch", storage_type).str(key).str("cpu").integer(numel).tuple().binpersid();
    integer(offset);
    mark();
    for (int64_t s : size) integer(s);
    tuple();
    mark();
    for (int64_t s : stride) integer(s);
    tuple();
    boolean(false).ordered_dict().tuple().reduce();
    return *this;
  }
  const std::string& bytes() const { return out_; }

 private:
  OpcodeWriter& byte(uint8_t b) {
    out_.push_back(char(b));
    return *this;
  }
  OpcodeWriter& le(uint64_t v, int n) {
    for (int k = 0; k < n; ++k) byte(uint8_t(v >> (8 * k)));
    return *this;
  }
  std::string out_;
};

// A Python value to pickle. Dict keys may be str, int, bool, float, None or tuples of those, as in Python; keys
// must be unique (writing a dict with a repeated key is an error, since Python would keep only the last).
class Object {
 public:
  enum class Kind : uint8_t { None, Bool, Int, Float, Str, List, Tuple, Dict, OrderedDict, Tensor };

  Object() = default;  // None
  static Object none() { return Object(); }
  static Object boolean(bool b);
  static Object integer(int64_t i);
  static Object real(double f);
  static Object str(std::string s);
  static Object list(std::vector<Object> items = {});
  static Object tuple(std::vector<Object> items = {});
  static Object dict();
  static Object ordered_dict();  // collections.OrderedDict (what state_dict() returns)
  // A tensor (any contiguous pigment tensor; its bytes are written as they are, little-endian). The data is
  // shared, not copied: keep it unchanged until the file is written.
  static Object tensor(const Tensor& t);
  // Conveniences.
  static Object str_list(const std::vector<std::string>& items);
  static Object real_list(const std::vector<double>& items);

  Kind kind() const { return kind_; }
  // Appends to a list or tuple; returns *this.
  Object& append(Object item);
  // Adds a dict entry; returns *this.
  Object& set(Object key, Object value);
  Object& set(const std::string& key, Object value) { return set(str(key), std::move(value)); }

  bool b() const { return b_; }
  int64_t i() const { return i_; }
  double f() const { return f_; }
  const std::string& s() const { return s_; }
  const std::vector<Object>& items() const { return items_; }
  const std::vector<std::pair<Object, Object>>& entries() const { return entries_; }
  const Tensor& tensor_value() const { return tensor_; }

 private:
  Kind kind_ = Kind::None;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::vector<Object> items_;
  std::vector<std::pair<Object, Object>> entries_;
  Tensor tensor_;
};

// The pickle of `root` (protocol 2, as torch.save writes data.pkl) and the storages its tensors refer to: storage
// key "N" is storages[N], one per tensor, in order of appearance. Tensors of dtypes torch has no storage type for
// are an error.
struct TorchPickle {
  std::string pickle;
  std::vector<Tensor> storages;
};
TorchPickle pickle_for_torch(const Object& root);

// torch's storage class name of a dtype ("FloatStorage", "HalfStorage", ...).
std::string torch_storage_type(DType dtype);

}  // namespace pigment::pickle
