#include "io/pickle_writer.h"

#include <cmath>
#include <map>
#include <set>

#include "core/error.h"

namespace pigment::pickle {

Object Object::boolean(bool b) {
  Object o;
  o.kind_ = Kind::Bool;
  o.b_ = b;
  return o;
}
Object Object::integer(int64_t i) {
  Object o;
  o.kind_ = Kind::Int;
  o.i_ = i;
  return o;
}
Object Object::real(double f) {
  Object o;
  o.kind_ = Kind::Float;
  o.f_ = f;
  return o;
}
Object Object::str(std::string s) {
  Object o;
  o.kind_ = Kind::Str;
  o.s_ = std::move(s);
  return o;
}
Object Object::list(std::vector<Object> items) {
  Object o;
  o.kind_ = Kind::List;
  o.items_ = std::move(items);
  return o;
}
Object Object::tuple(std::vector<Object> items) {
  Object o;
  o.kind_ = Kind::Tuple;
  o.items_ = std::move(items);
  return o;
}
Object Object::dict() {
  Object o;
  o.kind_ = Kind::Dict;
  return o;
}
Object Object::ordered_dict() {
  Object o;
  o.kind_ = Kind::OrderedDict;
  return o;
}
Object Object::tensor(const Tensor& t) {
  PIG_CHECK(t.defined(), "pickle writer: an undefined tensor");
  Object o;
  o.kind_ = Kind::Tensor;
  o.tensor_ = t;
  return o;
}
Object Object::str_list(const std::vector<std::string>& items) {
  Object o = list();
  for (const auto& s : items) o.items_.push_back(str(s));
  return o;
}
Object Object::real_list(const std::vector<double>& items) {
  Object o = list();
  for (double f : items) o.items_.push_back(real(f));
  return o;
}

Object& Object::append(Object item) {
  PIG_CHECK(kind_ == Kind::List || kind_ == Kind::Tuple, "pickle writer: append to a value that is not a list");
  items_.push_back(std::move(item));
  return *this;
}

Object& Object::set(Object key, Object value) {
  PIG_CHECK(kind_ == Kind::Dict || kind_ == Kind::OrderedDict, "pickle writer: set on a value that is not a dict");
  entries_.emplace_back(std::move(key), std::move(value));
  return *this;
}

std::string torch_storage_type(DType dtype) {
  switch (dtype) {
    case DType::F32: return "FloatStorage";
    case DType::F16: return "HalfStorage";
    case DType::BF16: return "BFloat16Storage";
    case DType::F64: return "DoubleStorage";
    case DType::I64: return "LongStorage";
    case DType::I32: return "IntStorage";
    case DType::I16: return "ShortStorage";
    case DType::I8: return "CharStorage";
    case DType::U8: return "ByteStorage";
    case DType::Bool: return "BoolStorage";
  }
  fail("pickle writer: no torch storage type for dtype ", int(dtype));
}

namespace {

// tag followed by rest (appended: GCC 12 warns falsely about "literal" + std::string&&, its bug 105329).
std::string tagged(const char* tag, const std::string& rest) {
  std::string s = tag;
  s += rest;
  return s;
}

// Python's dict key identity for the key kinds we write: 1, 1.0 and True are one key; "1" is another.
std::string key_identity(const Object& k) {
  using K = Object::Kind;
  switch (k.kind()) {
    case K::None: return "N";
    case K::Bool: return tagged("n", std::to_string(k.b() ? 1 : 0));
    case K::Int: return tagged("n", std::to_string(k.i()));
    case K::Float:
      if (std::isfinite(k.f()) && k.f() == std::trunc(k.f()) && std::fabs(k.f()) < 9e18)
        return tagged("n", std::to_string(int64_t(k.f())));
      {
        char buf[40];
        std::snprintf(buf, sizeof buf, "f%.17g", k.f());
        return buf;
      }
    case K::Str: return tagged("s", std::to_string(k.s().size())) + ":" + k.s();
    case K::Tuple: {
      std::string s = "t(";
      for (const auto& i : k.items()) s += key_identity(i) + ",";
      return s + ")";
    }
    default: fail("pickle writer: a dict key must be str, int, float, bool, None or a tuple of those");
  }
}

class Pickler {
 public:
  TorchPickle run(const Object& root) {
    w_.proto(2);
    write(root, 0);
    w_.stop();
    return {w_.bytes(), std::move(storages_)};
  }

 private:
  // Globals are memoized as Python's pickler does (later uses are BINGET).
  void global(const std::string& module, const std::string& name) {
    const std::string key = module + "." + name;
    auto it = memo_.find(key);
    if (it != memo_.end()) {
      w_.binget(it->second);
      return;
    }
    w_.global(module, name);
    memo_[key] = next_memo_;
    w_.binput(next_memo_++);
  }

  void write(const Object& o, int depth) {
    using K = Object::Kind;
    PIG_CHECK(depth < 200, "pickle writer: nesting deeper than 200 levels");
    switch (o.kind()) {
      case K::None: w_.none(); return;
      case K::Bool: w_.boolean(o.b()); return;
      case K::Int: w_.integer(o.i()); return;
      case K::Float: w_.real(o.f()); return;
      case K::Str: w_.binunicode(o.s()); return;
      case K::List:
        w_.empty_list();
        if (!o.items().empty()) {
          w_.mark();
          for (const auto& i : o.items()) write(i, depth + 1);
          w_.appends();
        }
        return;
      case K::Tuple:
        if (o.items().empty()) {
          w_.empty_tuple();
        } else if (o.items().size() <= 3) {
          for (const auto& i : o.items()) write(i, depth + 1);
          w_.tuple_n(int(o.items().size()));
        } else {
          w_.mark();
          for (const auto& i : o.items()) write(i, depth + 1);
          w_.tuple();
        }
        return;
      case K::Dict:
      case K::OrderedDict: {
        if (o.kind() == K::Dict) {
          w_.empty_dict();
        } else {
          global("collections", "OrderedDict");
          w_.empty_tuple().reduce();
        }
        std::set<std::string> seen;
        for (const auto& [k, v] : o.entries())
          PIG_CHECK(seen.insert(key_identity(k)).second, "pickle writer: the dict key ",
                    k.kind() == K::Str ? "'" + k.s() + "'" : key_identity(k), " appears twice");
        if (!o.entries().empty()) {
          w_.mark();
          for (const auto& [k, v] : o.entries()) {
            write(k, depth + 1);
            write(v, depth + 1);
          }
          w_.setitems();
        }
        return;
      }
      case K::Tensor: {
        const Tensor& t = o.tensor_value();
        const std::string type = torch_storage_type(t.dtype());
        const std::string key = std::to_string(storages_.size());
        storages_.push_back(t);
        // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)
        global("torch._utils", "_rebuild_tensor_v2");
        w_.mark();
        w_.mark().binunicode("storage");
        global("torch", type);
        w_.binunicode(key).binunicode("cpu").integer(t.numel()).tuple().binpersid();
        w_.integer(0);
        std::vector<int64_t> stride(size_t(t.ndim()), 1);
        for (int d = int(t.ndim()) - 2; d >= 0; --d) stride[size_t(d)] = stride[size_t(d) + 1] * t.dim(d + 1);
        w_.mark();
        for (int d = 0; d < int(t.ndim()); ++d) w_.integer(t.dim(d));
        w_.tuple();
        w_.mark();
        for (int64_t s : stride) w_.integer(s);
        w_.tuple();
        w_.boolean(false);
        global("collections", "OrderedDict");
        w_.empty_tuple().reduce();
        w_.tuple().reduce();
        return;
      }
    }
  }

  OpcodeWriter w_;
  std::map<std::string, uint32_t> memo_;
  uint32_t next_memo_ = 0;
  std::vector<Tensor> storages_;
};

}  // namespace

TorchPickle pickle_for_torch(const Object& root) { return Pickler().run(root); }

}  // namespace pigment::pickle
