#include "io/unpickler.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <unordered_set>

#include "core/error.h"

namespace pigment::pickle {

bool TensorRef::contiguous() const {
  int64_t expect = 1;
  for (size_t d = size.size(); d-- > 0;) {
    if (size[d] == 1) continue;  // a dimension of extent 1 may carry any stride
    if (stride[d] != expect) return false;
    expect *= size[d];
  }
  return true;
}

namespace {
std::string dict_key_at(const Value& v, int depth);
}

std::string dict_key(const Value& v) { return dict_key_at(v, 0); }

namespace {

std::string dict_key_at(const Value& v, int depth) {
  PIG_CHECK(depth < 32, "pickle: dict key nests tuples more than 32 deep");
  switch (v.kind) {
    case Kind::None: return "n";
    case Kind::Bool: return v.b ? "i1" : "i0";  // Python: True == 1, so they are one key
    case Kind::Int: return "i" + std::to_string(v.i);
    case Kind::Float:
      if (std::isfinite(v.f) && v.f == std::floor(v.f) && std::fabs(v.f) < 9.2e18)
        return "i" + std::to_string(int64_t(v.f));
      return "f" + v.repr();
    case Kind::Str: return "s" + v.s;
    case Kind::Bytes: return "b" + v.s;
    case Kind::Global: return "g" + v.s;
    case Kind::Tuple: {
      std::string k = "t(";
      for (const Value* x : v.items) {
        k += dict_key_at(*x, depth + 1);
        k += '\x1f';
        PIG_CHECK(k.size() < 4096, "pickle: tuple used as a dict key is too large");
      }
      return k + ")";
    }
    default: break;
  }
  fail("pickle: unhashable dict key of kind ", int(v.kind), " (", v.repr(60), ")");
}

}  // namespace

const Value* Value::get(std::string_view key) const {
  if (kind != Kind::Dict) return nullptr;
  auto it = index.find("s" + std::string(key));
  return it == index.end() ? nullptr : entries[it->second].second;
}

const Value* Value::get(int64_t key) const {
  if (kind != Kind::Dict) return nullptr;
  auto it = index.find("i" + std::to_string(key));
  return it == index.end() ? nullptr : entries[it->second].second;
}

namespace {

std::string format_double(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, f);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

void quote(std::string& out, const std::string& s, size_t max_len) {
  out += '\'';
  for (unsigned char c : s) {
    if (out.size() > max_len) return;
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    } else {
      out += char(c);
    }
  }
  out += '\'';
}

// Appends a rendering of v; every level writes at least one character before descending, so the length bound
// also bounds the recursion (and ends cycles).
void repr_into(const Value& v, std::string& out, size_t max_len) {
  if (out.size() > max_len) return;
  switch (v.kind) {
    case Kind::None: out += "None"; return;
    case Kind::Bool: out += v.b ? "True" : "False"; return;
    case Kind::Int: out += std::to_string(v.i); return;
    case Kind::Float: out += format_double(v.f); return;
    case Kind::Str: quote(out, v.s, max_len); return;
    case Kind::Bytes: out += 'b'; quote(out, v.s, max_len); return;
    case Kind::Global: out += v.s; return;
    case Kind::Opaque: out += "<" + v.s + ">"; return;
    case Kind::Storage:
      out += "<storage " + v.storage.key + " " + std::string(dtype_name(v.storage.dtype)) + "[" +
             std::to_string(v.storage.numel) + "]>";
      return;
    case Kind::Tensor: {
      DType dt = v.tensor.storage ? v.tensor.storage->storage.dtype : DType::F32;
      out += "tensor(" + std::string(dtype_name(dt)) + shape_str(v.tensor.size) + ")";
      return;
    }
    case Kind::List:
    case Kind::Tuple: {
      out += v.kind == Kind::List ? '[' : '(';
      for (size_t k = 0; k < v.items.size(); ++k) {
        if (out.size() > max_len) return;
        if (k) out += ", ";
        repr_into(*v.items[k], out, max_len);
      }
      if (v.kind == Kind::Tuple && v.items.size() == 1) out += ',';
      out += v.kind == Kind::List ? ']' : ')';
      return;
    }
    case Kind::Dict: {
      out += '{';
      for (size_t k = 0; k < v.entries.size(); ++k) {
        if (out.size() > max_len) return;
        if (k) out += ", ";
        repr_into(*v.entries[k].first, out, max_len);
        out += ": ";
        repr_into(*v.entries[k].second, out, max_len);
      }
      out += '}';
      return;
    }
  }
}

}  // namespace

std::string Value::repr(size_t max_len) const {
  std::string out;
  repr_into(*this, out, max_len);
  if (out.size() > max_len) {
    out.resize(max_len);
    out += "...";
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const std::string& label, const Limits& limits)
      : p_(data), end_(data + size), begin_(data), label_(label), lim_(limits) {}

  std::shared_ptr<const Document> run();

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail(label_, ": ", what, " at byte ", op_pos_);
  }
  size_t left() const { return size_t(end_ - p_); }
  const uint8_t* take(size_t n) {
    if (n > left()) bad("pickle truncated (need " + std::to_string(n) + " more bytes, have " +
                        std::to_string(left()) + ")");
    const uint8_t* q = p_;
    p_ += n;
    return q;
  }
  uint64_t le(size_t n) {
    const uint8_t* q = take(n);
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = v << 8 | q[k];
    return v;
  }
  std::string line() {
    const void* nl = std::memchr(p_, '\n', std::min<size_t>(left(), 4096));
    if (!nl) bad("pickle text argument has no end of line within 4096 bytes");
    const uint8_t* q = p_;
    p_ = static_cast<const uint8_t*>(nl) + 1;
    std::string s(reinterpret_cast<const char*>(q), size_t(static_cast<const uint8_t*>(nl) - q));
    if (!s.empty() && s.back() == '\r') s.pop_back();
    return s;
  }
  std::string bytes(uint64_t n) {
    if (n > lim_.max_string) bad("pickle string of " + std::to_string(n) + " bytes exceeds the limit");
    const uint8_t* q = take(size_t(n));
    return std::string(reinterpret_cast<const char*>(q), size_t(n));
  }

  Value* make(Kind k) {
    if (doc_->arena_.size() >= lim_.max_values) bad("pickle creates more than " + std::to_string(lim_.max_values) +
                                                    " objects");
    doc_->arena_.push_back(std::make_unique<Value>());
    Value* v = doc_->arena_.back().get();
    v->kind = k;
    return v;
  }
  Value* make_int(int64_t i) {
    Value* v = make(Kind::Int);
    v->i = i;
    return v;
  }
  void push(Value* v) {
    if (stack_.size() + marks_.size() >= lim_.max_stack) bad("pickle stack deeper than the limit");
    stack_.push_back(v);
  }
  Value* pop() {
    if (stack_.size() <= floor()) bad("pickle pops from an empty stack");
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value* top() {
    if (stack_.size() <= floor()) bad("pickle reads the top of an empty stack");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  // Items pushed since the last MARK, removing them and the mark.
  std::vector<Value*> pop_mark() {
    if (marks_.empty()) bad("pickle uses a MARK that was never set");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return items;
  }
  void check_container(const Value* c, size_t extra) {
    size_t n = c->kind == Kind::Dict ? c->entries.size() : c->items.size();
    if (n + extra > lim_.max_container) bad("pickle container grows past " + std::to_string(lim_.max_container) +
                                            " items");
  }
  void set_item(Value* d, Value* k, Value* v) {
    if (d->kind != Kind::Dict) bad("pickle SETITEM on a " + d->repr(40) + ", expected a dict");
    check_container(d, 1);
    std::string key;
    try {
      key = dict_key(*k);
    } catch (const Error& e) {
      bad(e.what());
    }
    auto [it, inserted] = d->index.emplace(std::move(key), d->entries.size());
    if (inserted)
      d->entries.emplace_back(k, v);
    else
      d->entries[it->second].second = v;  // Python keeps the first key object and the last value
  }
  void append(Value* l, Value* v) {
    if (l->kind != Kind::List) bad("pickle APPEND on a " + l->repr(40) + ", expected a list");
    check_container(l, 1);
    l->items.push_back(v);
  }
  Value* tuple(std::vector<Value*> items) {
    if (items.size() > lim_.max_container) bad("pickle tuple too large");
    Value* t = make(Kind::Tuple);
    t->items = std::move(items);
    return t;
  }
  void memo_put(uint64_t idx, Value* v) {
    if (memo_.size() >= lim_.max_memo && !memo_.count(idx)) bad("pickle memo grows past the limit");
    memo_[idx] = v;
  }
  Value* memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) bad("pickle refers to memo entry " + std::to_string(idx) + " that was never stored");
    return it->second;
  }
  int64_t parse_int_text(const std::string& s) {
    std::string t = s;
    if (!t.empty() && t.back() == 'L') t.pop_back();
    int64_t v = 0;
    auto r = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || r.ec != std::errc() || r.ptr != t.data() + t.size()) bad("pickle integer '" + s + "' is invalid or wider than 64 bits");
    return v;
  }
  int64_t signed_le(const uint8_t* q, size_t n) {
    if (n == 0) return 0;
    if (n > 8) {
      // Wider encodings are fine as long as the extra bytes are only sign extension.
      uint8_t ext = (q[7] & 0x80) ? 0xff : 0x00;
      for (size_t k = 8; k < n; ++k)
        if (q[k] != ext) bad("pickle integer wider than 64 bits");
      n = 8;
    }
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = v << 8 | q[k];
    if (n < 8 && (q[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);
    return int64_t(v);
  }

  Value* global(const std::string& module, const std::string& name);
  Value* reduce(Value* callee, Value* args);
  Value* rebuild_tensor(const std::vector<Value*>& a);
  Value* persistent_load(Value* pid);
  void build(Value* obj, Value* state);
  std::vector<int64_t> int_tuple(const Value* v, const char* what);

  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* begin_;
  size_t op_pos_ = 0;
  std::string label_;
  Limits lim_;
  std::shared_ptr<Document> doc_ = std::make_shared<Document>();
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  std::unordered_map<std::string, Value*> storages_by_key_;
};

Value* Unpickler::global(const std::string& module, const std::string& name) {
  struct Known {
    const char* module;
    const char* name;
    GlobalId id;
    DType dtype;
  };
  static const Known known[] = {
      {"collections", "OrderedDict", GlobalId::OrderedDict, DType::F32},
      {"torch._utils", "_rebuild_tensor_v2", GlobalId::RebuildTensorV2, DType::F32},
      {"torch._utils", "_rebuild_parameter", GlobalId::RebuildParameter, DType::F32},
      {"torch._utils", "_rebuild_parameter_with_state", GlobalId::RebuildParameterWithState, DType::F32},
      {"torch", "Size", GlobalId::TorchSize, DType::F32},
      {"torch", "FloatStorage", GlobalId::Storage, DType::F32},
      {"torch", "HalfStorage", GlobalId::Storage, DType::F16},
      {"torch", "BFloat16Storage", GlobalId::Storage, DType::BF16},
      {"torch", "DoubleStorage", GlobalId::Storage, DType::F64},
      {"torch", "LongStorage", GlobalId::Storage, DType::I64},
      {"torch", "IntStorage", GlobalId::Storage, DType::I32},
      {"torch", "ShortStorage", GlobalId::Storage, DType::I16},
      {"torch", "CharStorage", GlobalId::Storage, DType::I8},
      {"torch", "ByteStorage", GlobalId::Storage, DType::U8},
      {"torch", "BoolStorage", GlobalId::Storage, DType::Bool},
      // Inert data that PyTorch Lightning checkpoints (the original SD .ckpt files) carry in their callback
      // state: kept as opaque values, never interpreted or called.
      {"_codecs", "encode", GlobalId::CodecsEncode, DType::F32},
      {"numpy.core.multiarray", "scalar", GlobalId::NumpyScalar, DType::F32},
      {"numpy", "dtype", GlobalId::NumpyDtype, DType::F32},
      {"pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint", GlobalId::LightningModelCheckpoint,
       DType::F32},
  };
  for (const auto& k : known)
    if (module == k.module && name == k.name) {
      Value* g = make(Kind::Global);
      g->global = k.id;
      g->storage_dtype = k.dtype;
      g->s = module + "." + name;
      return g;
    }
  std::string shown = module + "." + name;
  for (char& c : shown)
    if (c < 0x20 || c == 0x7f) c = '?';
  if (shown.size() > 120) shown = shown.substr(0, 120) + "...";
  bad("refusing pickle global '" + shown +
      "' (only tensors, storages and plain containers are allowed; nothing is executed)");
}

std::vector<int64_t> Unpickler::int_tuple(const Value* v, const char* what) {
  if (v->kind != Kind::Tuple && v->kind != Kind::List) bad(std::string("tensor ") + what + " is not a tuple");
  if (v->items.size() > 64) bad(std::string("tensor ") + what + " has more than 64 dimensions");
  std::vector<int64_t> r;
  for (const Value* x : v->items) {
    if (x->kind != Kind::Int) bad(std::string("tensor ") + what + " holds a non-integer");
    if (x->i < 0) bad(std::string("tensor ") + what + " holds a negative value " + std::to_string(x->i));
    r.push_back(x->i);
  }
  return r;
}

Value* Unpickler::rebuild_tensor(const std::vector<Value*>& a) {
  if (a.size() != 6 && a.size() != 7) bad("_rebuild_tensor_v2 takes 6 or 7 arguments, got " + std::to_string(a.size()));
  if (a[0]->kind != Kind::Storage) bad("_rebuild_tensor_v2 needs a storage as its first argument, got " + a[0]->repr(40));
  if (a[1]->kind != Kind::Int || a[1]->i < 0) bad("_rebuild_tensor_v2 storage offset must be a non-negative int");
  Value* t = make(Kind::Tensor);
  TensorRef& r = t->tensor;
  r.storage = a[0];
  r.offset = a[1]->i;
  r.size = int_tuple(a[2], "size");
  r.stride = int_tuple(a[3], "stride");
  if (r.size.size() != r.stride.size())
    bad("tensor size " + shape_str(r.size) + " and stride " + shape_str(r.stride) + " differ in length");
  r.requires_grad = (a[4]->kind == Kind::Bool && a[4]->b) || (a[4]->kind == Kind::Int && a[4]->i);
  // The view must lie inside its storage: offset + sum((size-1)*stride) < numel, computed without overflow.
  const StorageRef& s = a[0]->storage;
  __int128 numel = 1, last = r.offset;
  for (size_t d = 0; d < r.size.size(); ++d) {
    numel *= r.size[d];
    if (numel > (__int128(1) << 62)) bad("tensor of size " + shape_str(r.size) + " is absurdly large");
  }
  if (numel > 0) {
    for (size_t d = 0; d < r.size.size(); ++d) last += __int128(r.size[d] - 1) * r.stride[d];
    if (last >= s.numel)
      bad("tensor view (offset " + std::to_string(r.offset) + ", size " + shape_str(r.size) + ", stride " +
          shape_str(r.stride) + ") runs past its storage '" + s.key + "' of " + std::to_string(s.numel) +
          " elements");
  }
  return t;
}

Value* Unpickler::persistent_load(Value* pid) {
  if (pid->kind != Kind::Tuple || pid->items.size() != 5 || pid->items[0]->kind != Kind::Str ||
      pid->items[0]->s != "storage")
    bad("persistent id " + pid->repr(80) + " is not ('storage', type, key, location, numel)");
  const auto& it = pid->items;
  if (it[1]->kind != Kind::Global || it[1]->global != GlobalId::Storage)
    bad("persistent id names storage type " + it[1]->repr(60) + ", expected a torch.*Storage");
  std::string key;
  if (it[2]->kind == Kind::Str)
    key = it[2]->s;
  else if (it[2]->kind == Kind::Int && it[2]->i >= 0)
    key = std::to_string(it[2]->i);
  else
    bad("storage key " + it[2]->repr(60) + " is not a string");
  if (key.empty() || key.size() > 128 || key.find_first_of("/\\") != std::string::npos || key == "." || key == "..")
    bad("storage key '" + it[2]->repr(60) + "' is not a plain record name");
  if (it[3]->kind != Kind::Str) bad("storage location " + it[3]->repr(60) + " is not a string");
  if (it[4]->kind != Kind::Int || it[4]->i < 0) bad("storage '" + key + "' element count is not a non-negative int");
  DType dt = it[1]->storage_dtype;
  if (uint64_t(it[4]->i) > (uint64_t(1) << 60) / dtype_size(dt))
    bad("storage '" + key + "' claims an absurd " + std::to_string(it[4]->i) + " elements");
  auto found = storages_by_key_.find(key);
  if (found != storages_by_key_.end()) {
    const StorageRef& prev = found->second->storage;
    if (prev.dtype != dt || prev.numel != it[4]->i)
      bad("storage '" + key + "' is referenced as both " + std::string(dtype_name(prev.dtype)) + "[" +
          std::to_string(prev.numel) + "] and " + std::string(dtype_name(dt)) + "[" + std::to_string(it[4]->i) + "]");
    return found->second;
  }
  Value* s = make(Kind::Storage);
  s->storage.key = key;
  s->storage.dtype = dt;
  s->storage.numel = it[4]->i;
  s->storage.location = it[3]->s.substr(0, 64);
  storages_by_key_[key] = s;
  doc_->storages_.push_back(s);
  return s;
}

Value* Unpickler::reduce(Value* callee, Value* args) {
  if (callee->kind != Kind::Global) bad("pickle calls " + callee->repr(60) + ", which is not an allowed function");
  if (args->kind != Kind::Tuple) bad("pickle calls " + callee->s + " with arguments that are not a tuple");
  const auto& a = args->items;
  switch (callee->global) {
    case GlobalId::OrderedDict: {
      Value* d = make(Kind::Dict);
      d->ordered = true;
      if (a.empty()) return d;
      if (a.size() != 1 || (a[0]->kind != Kind::List && a[0]->kind != Kind::Tuple))
        bad("collections.OrderedDict called with " + args->repr(60) + ", expected () or a list of pairs");
      for (Value* kv : a[0]->items) {
        if ((kv->kind != Kind::List && kv->kind != Kind::Tuple) || kv->items.size() != 2)
          bad("collections.OrderedDict item " + kv->repr(60) + " is not a (key, value) pair");
        set_item(d, kv->items[0], kv->items[1]);
      }
      return d;
    }
    case GlobalId::RebuildTensorV2: return rebuild_tensor(a);
    case GlobalId::RebuildParameter:
    case GlobalId::RebuildParameterWithState: {
      size_t want = callee->global == GlobalId::RebuildParameter ? 3 : 4;
      if (a.size() != want || a[0]->kind != Kind::Tensor)
        bad(callee->s + " needs (tensor, requires_grad, hooks" + (want == 4 ? ", state)" : ")") + ", got " +
            args->repr(60));
      Value* t = make(Kind::Tensor);
      t->tensor = a[0]->tensor;
      t->tensor.is_parameter = true;
      t->tensor.requires_grad = a[1]->kind == Kind::Bool && a[1]->b;
      return t;
    }
    case GlobalId::TorchSize: {
      if (a.size() != 1 || (a[0]->kind != Kind::Tuple && a[0]->kind != Kind::List))
        bad("torch.Size called with " + args->repr(60) + ", expected one tuple");
      int_tuple(a[0], "torch.Size");
      return tuple(a[0]->items);
    }
    case GlobalId::CodecsEncode: {
      // Protocol 2 writes Python 3 bytes as _codecs.encode(text, 'latin1'): code points below 256 are the bytes.
      if (a.size() != 2 || a[0]->kind != Kind::Str || a[1]->kind != Kind::Str)
        bad("_codecs.encode called with " + args->repr(60) + ", expected (str, encoding)");
      Value* b = make(Kind::Bytes);
      const std::string& s = a[0]->s;
      if (a[1]->s == "latin1" || a[1]->s == "latin-1" || a[1]->s == "iso-8859-1") {
        for (size_t k = 0; k < s.size();) {
          unsigned char c = s[k];
          if (c < 0x80) {
            b->s += char(c);
            ++k;
          } else if ((c == 0xc2 || c == 0xc3) && k + 1 < s.size()) {
            b->s += char(((c & 0x03) << 6) | (s[k + 1] & 0x3f));
            k += 2;
          } else {
            bad("_codecs.encode: text is not encodable as latin1");
          }
        }
      } else {
        b->s = s;
      }
      return b;
    }
    case GlobalId::NumpyScalar:
    case GlobalId::NumpyDtype:
    case GlobalId::LightningModelCheckpoint: {
      Value* o = make(Kind::Opaque);
      o->s = callee->s;
      o->items = a;
      return o;
    }
    case GlobalId::Storage: bad("pickle calls storage type " + callee->s + " directly; storages come from persistent ids");
    case GlobalId::None: break;
  }
  bad("pickle calls " + callee->s + ", which is not an allowed function");
}

void Unpickler::build(Value* obj, Value* state) {
  if (obj->kind == Kind::Dict || obj->kind == Kind::Opaque) {
    obj->attrs = state;  // OrderedDict._metadata of a state_dict, numpy dtype state: kept, not interpreted
    return;
  }
  if (obj->kind == Kind::Tensor) return;  // tensor subclass attributes carry no data we need
  bad("pickle BUILD on " + obj->repr(60) + ", which takes no state");
}

std::shared_ptr<const Document> Unpickler::run() {
  enum : uint8_t {
    MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2', FLOAT = 'F', INT = 'I', BININT = 'J',
    BININT1 = 'K', LONG = 'L', BININT2 = 'M', NONE = 'N', BINPERSID = 'Q', REDUCE = 'R', BINSTRING = 'T',
    SHORT_BINSTRING = 'U', BINUNICODE = 'X', APPEND = 'a', BUILD = 'b', GLOBAL = 'c', DICT = 'd', EMPTY_DICT = '}',
    APPENDS = 'e', GET = 'g', BINGET = 'h', LONG_BINGET = 'j', LIST = 'l', EMPTY_LIST = ']', PUT = 'p',
    BINPUT = 'q', LONG_BINPUT = 'r', SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u',
    BINFLOAT = 'G', PROTO = 0x80, NEWOBJ = 0x81, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88,
    NEWFALSE = 0x89, LONG1 = 0x8a, LONG4 = 0x8b, BINBYTES = 'B', SHORT_BINBYTES = 'C', SHORT_BINUNICODE = 0x8c,
    BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e, STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95,
  };
  while (true) {
    op_pos_ = size_t(p_ - begin_);
    if (p_ >= end_) bad("pickle ends without STOP");
    uint8_t op = *p_++;
    switch (op) {
      case PROTO: {
        uint64_t v = le(1);
        if (v > 5) bad("pickle protocol " + std::to_string(v) + " is newer than 5");
        break;
      }
      case FRAME: {
        uint64_t n = le(8);
        if (n > left()) bad("pickle frame of " + std::to_string(n) + " bytes runs past the end");
        break;
      }
      case MARK:
        if (stack_.size() + marks_.size() >= lim_.max_stack) bad("pickle stack deeper than the limit");
        marks_.push_back(stack_.size());
        break;
      case STOP: {
        Value* r = pop();
        doc_->root_ = r;
        return doc_;
      }
      case POP:
        if (stack_.size() > floor())
          stack_.pop_back();
        else
          pop_mark();
        break;
      case POP_MARK: pop_mark(); break;
      case DUP: push(top()); break;
      case NONE: push(make(Kind::None)); break;
      case NEWTRUE:
      case NEWFALSE: {
        Value* v = make(Kind::Bool);
        v->b = op == NEWTRUE;
        push(v);
        break;
      }
      case BININT: push(make_int(int32_t(uint32_t(le(4))))); break;
      case BININT1: push(make_int(int64_t(le(1)))); break;
      case BININT2: push(make_int(int64_t(le(2)))); break;
      case INT: {
        std::string s = line();
        if (s == "00" || s == "01") {
          Value* v = make(Kind::Bool);
          v->b = s == "01";
          push(v);
        } else {
          push(make_int(parse_int_text(s)));
        }
        break;
      }
      case LONG: push(make_int(parse_int_text(line()))); break;
      case LONG1: {
        size_t n = size_t(le(1));
        push(make_int(signed_le(take(n), n)));
        break;
      }
      case LONG4: {
        int64_t n = int32_t(uint32_t(le(4)));
        if (n < 0 || n > 64) bad("pickle LONG4 of " + std::to_string(n) + " bytes (only 64-bit integers are supported)");
        push(make_int(signed_le(take(size_t(n)), size_t(n))));
        break;
      }
      case BINFLOAT: {
        const uint8_t* q = take(8);
        uint64_t u = 0;
        for (int k = 0; k < 8; ++k) u = u << 8 | q[k];  // big-endian
        Value* v = make(Kind::Float);
        std::memcpy(&v->f, &u, 8);
        push(v);
        break;
      }
      case FLOAT: {
        std::string s = line();
        Value* v = make(Kind::Float);
        auto r = std::from_chars(s.data(), s.data() + s.size(), v->f);
        if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size()) bad("pickle float '" + s + "' is invalid");
        push(v);
        break;
      }
      case BINUNICODE:
      case SHORT_BINUNICODE:
      case BINUNICODE8:
      case BINSTRING:
      case SHORT_BINSTRING:
      case BINBYTES:
      case SHORT_BINBYTES:
      case BINBYTES8: {
        uint64_t n;
        if (op == SHORT_BINUNICODE || op == SHORT_BINSTRING || op == SHORT_BINBYTES)
          n = le(1);
        else if (op == BINUNICODE8 || op == BINBYTES8)
          n = le(8);
        else if (op == BINSTRING) {
          int64_t m = int32_t(uint32_t(le(4)));
          if (m < 0) bad("pickle BINSTRING with negative length");
          n = uint64_t(m);
        } else
          n = le(4);
        bool is_bytes = op == BINBYTES || op == SHORT_BINBYTES || op == BINBYTES8;
        Value* v = make(is_bytes ? Kind::Bytes : Kind::Str);
        v->s = bytes(n);
        push(v);
        break;
      }
      case EMPTY_LIST: push(make(Kind::List)); break;
      case EMPTY_DICT: push(make(Kind::Dict)); break;
      case EMPTY_TUPLE: push(make(Kind::Tuple)); break;
      case LIST: {
        auto items = pop_mark();
        if (items.size() > lim_.max_container) bad("pickle list too large");
        Value* l = make(Kind::List);
        l->items = std::move(items);
        push(l);
        break;
      }
      case TUPLE: push(tuple(pop_mark())); break;
      case TUPLE1:
      case TUPLE2:
      case TUPLE3: {
        size_t n = op - TUPLE1 + 1;
        std::vector<Value*> items(n);
        for (size_t k = n; k-- > 0;) items[k] = pop();
        push(tuple(std::move(items)));
        break;
      }
      case DICT: {
        auto items = pop_mark();
        if (items.size() % 2) bad("pickle DICT with an odd number of items");
        Value* d = make(Kind::Dict);
        for (size_t k = 0; k < items.size(); k += 2) set_item(d, items[k], items[k + 1]);
        push(d);
        break;
      }
      case APPEND: {
        Value* v = pop();
        append(top(), v);
        break;
      }
      case APPENDS: {
        auto items = pop_mark();
        Value* l = top();
        if (l->kind != Kind::List) bad("pickle APPENDS on a " + l->repr(40) + ", expected a list");
        check_container(l, items.size());
        l->items.insert(l->items.end(), items.begin(), items.end());
        break;
      }
      case SETITEM: {
        Value* v = pop();
        Value* k = pop();
        set_item(top(), k, v);
        break;
      }
      case SETITEMS: {
        auto items = pop_mark();
        if (items.size() % 2) bad("pickle SETITEMS with an odd number of items");
        Value* d = top();
        for (size_t k = 0; k < items.size(); k += 2) set_item(d, items[k], items[k + 1]);
        break;
      }
      case GET: push(memo_get(uint64_t(parse_int_text(line())))); break;
      case BINGET: push(memo_get(le(1))); break;
      case LONG_BINGET: push(memo_get(le(4))); break;
      case PUT: {
        int64_t idx = parse_int_text(line());
        if (idx < 0) bad("pickle PUT with a negative index");
        memo_put(uint64_t(idx), top());
        break;
      }
      case BINPUT: memo_put(le(1), top()); break;
      case LONG_BINPUT: memo_put(le(4), top()); break;
      case MEMOIZE: memo_put(memo_.size(), top()); break;
      case GLOBAL: {
        std::string module = line();
        std::string name = line();
        push(global(module, name));
        break;
      }
      case STACK_GLOBAL: {
        Value* name = pop();
        Value* module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str) bad("pickle STACK_GLOBAL needs two strings");
        push(global(module->s, name->s));
        break;
      }
      case REDUCE:
      case NEWOBJ: {
        Value* args = pop();
        Value* callee = pop();
        push(reduce(callee, args));
        break;
      }
      case BUILD: {
        Value* state = pop();
        build(top(), state);
        break;
      }
      case BINPERSID: push(persistent_load(pop())); break;
      default: {
        char b[8];
        std::snprintf(b, sizeof b, "0x%02x", op);
        bad(std::string("unsupported pickle opcode ") + b +
            (op >= 0x20 && op < 0x7f ? std::string(" ('") + char(op) + "')" : std::string()));
      }
    }
  }
}

std::shared_ptr<const Document> unpickle(const uint8_t* data, size_t size, const std::string& label,
                                         const Limits& limits) {
  PIG_CHECK(data || size == 0, label, ": no pickle data");
  return Unpickler(data, size, label, limits).run();
}

// ---------------------------------------------------------------------------------------------------------------

namespace {

struct Flattener {
  static constexpr size_t kMaxName = 1024;
  const std::string& label;
  int max_depth;
  std::vector<std::pair<std::string, const Value*>> out;
  std::unordered_set<std::string> names;
  std::unordered_set<const Value*> on_path;
  // The path to the current node: a dict key or a list index per level (names are only built at tensors, so a
  // huge key above no tensor costs nothing).
  std::vector<std::pair<const Value*, size_t>> path;
  size_t visits = 0;

  std::string name() const {
    std::string n;
    for (const auto& [key, index] : path) {
      if (!n.empty()) n += '.';
      if (!key)
        n += std::to_string(index);
      else if (key->kind == Kind::Str)
        n.append(key->s, 0, kMaxName + 1);
      else if (key->kind == Kind::Int)
        n += std::to_string(key->i);
      else
        n += key->repr(80);
      PIG_CHECK(n.size() <= kMaxName, label, ": tensor name '", n.substr(0, 60), "...' is longer than ", kMaxName,
                " characters");
    }
    return n.empty() ? "tensor" : n;
  }

  void walk(const Value& v, int depth) {
    PIG_CHECK(++visits <= (size_t(1) << 20), label, ": pickle structure too large to walk (shared containers?)");
    if (v.kind == Kind::Tensor) {
      std::string n = name();
      PIG_CHECK(names.insert(n).second, label, ": two tensors are both named '", n, "'");
      out.emplace_back(std::move(n), &v);
      return;
    }
    if (!v.is_container()) return;
    PIG_CHECK(depth < max_depth, label, ": containers nested deeper than ", max_depth, " levels");
    PIG_CHECK(on_path.insert(&v).second, label, ": a container contains itself (at '", path.empty() ? "" : name(),
              "')");
    if (v.kind == Kind::Dict) {
      for (const auto& [k, x] : v.entries) {
        path.emplace_back(k, 0);
        walk(*x, depth + 1);
        path.pop_back();
      }
    } else {
      for (size_t k = 0; k < v.items.size(); ++k) {
        path.emplace_back(nullptr, k);
        walk(*v.items[k], depth + 1);
        path.pop_back();
      }
    }
    on_path.erase(&v);
  }
};

}  // namespace

std::vector<std::pair<std::string, const Value*>> flatten_tensors(const Value& root, const std::string& label,
                                                                  int max_depth) {
  Flattener f{label, max_depth, {}, {}, {}, {}, 0};
  f.walk(root, 0);
  return std::move(f.out);
}

}  // namespace pigment::pickle
