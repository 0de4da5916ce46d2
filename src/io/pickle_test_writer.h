// Builds pickles opcode by opcode and torch.save-style zip archives in memory, for the io tests and the fuzz
// seed corpus (no Python or torch needed). Header-only so that it stays out of the library.
#pragma once
#include <zip.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pigment::testing {

class PickleWriter {
 public:
  PickleWriter& proto(int v = 2) { return op(0x80).byte(uint8_t(v)); }
  PickleWriter& op(uint8_t c) { return byte(c); }
  PickleWriter& raw(const std::string& s) {
    out_ += s;
    return *this;
  }
  PickleWriter& mark() { return op('('); }
  PickleWriter& stop() { return op('.'); }
  PickleWriter& none() { return op('N'); }
  PickleWriter& boolean(bool b) { return op(b ? 0x88 : 0x89); }
  PickleWriter& empty_dict() { return op('}'); }
  PickleWriter& empty_list() { return op(']'); }
  PickleWriter& empty_tuple() { return op(')'); }
  PickleWriter& setitem() { return op('s'); }
  PickleWriter& setitems() { return op('u'); }
  PickleWriter& append() { return op('a'); }
  PickleWriter& appends() { return op('e'); }
  PickleWriter& tuple() { return op('t'); }
  PickleWriter& tuple_n(int n) { return op(uint8_t(0x84 + n)); }  // TUPLE1..TUPLE3
  PickleWriter& reduce() { return op('R'); }
  PickleWriter& build() { return op('b'); }
  PickleWriter& binpersid() { return op('Q'); }
  PickleWriter& binput(uint8_t i) { return op('q').byte(i); }
  PickleWriter& binget(uint8_t i) { return op('h').byte(i); }
  PickleWriter& integer(int64_t v) {
    if (v >= 0 && v < 256) return op('K').byte(uint8_t(v));
    if (v >= 0 && v < 65536) return op('M').le(uint64_t(v), 2);
    if (v >= INT32_MIN && v <= INT32_MAX) return op('J').le(uint64_t(uint32_t(int32_t(v))), 4);
    return op(0x8a).byte(8).le(uint64_t(v), 8);  // LONG1
  }
  PickleWriter& real(double d) {
    uint64_t u;
    std::memcpy(&u, &d, 8);
    op('G');
    for (int k = 7; k >= 0; --k) byte(uint8_t(u >> (8 * k)));  // big-endian
    return *this;
  }
  PickleWriter& str(const std::string& s) {
    if (s.size() < 256) return op(0x8c).byte(uint8_t(s.size())).raw(s);  // SHORT_BINUNICODE
    return op('X').le(s.size(), 4).raw(s);
  }
  PickleWriter& binunicode(const std::string& s) { return op('X').le(s.size(), 4).raw(s); }
  PickleWriter& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  PickleWriter& stack_global(const std::string& module, const std::string& name) {
    return str(module).str(name).op(0x93);
  }
  // collections.OrderedDict() on the stack.
  PickleWriter& ordered_dict() { return global("collections", "OrderedDict").empty_tuple().reduce(); }
  // A tensor as torch.save writes it: _rebuild_tensor_v2(persistent storage, offset, size, stride, False, {}).
  PickleWriter& tensor(const std::string& storage_type, const std::string& key, int64_t numel, int64_t offset,
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
  PickleWriter& byte(uint8_t b) {
    out_.push_back(char(b));
    return *this;
  }
  PickleWriter& le(uint64_t v, int n) {
    for (int k = 0; k < n; ++k) byte(uint8_t(v >> (8 * k)));
    return *this;
  }
  std::string out_;
};

using Records = std::vector<std::pair<std::string, std::string>>;

// A zip archive in memory holding the given records (name → content), stored or deflated.
inline std::string make_zip(const Records& records, bool deflate = false) {
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* src = zip_source_buffer_create(nullptr, 0, 0, &err);
  if (!src) throw std::runtime_error("make_zip: cannot create a buffer source");
  zip_source_keep(src);
  zip_t* za = zip_open_from_source(src, ZIP_TRUNCATE, &err);
  if (!za) throw std::runtime_error("make_zip: cannot open the archive");
  for (const auto& [name, data] : records) {
    zip_source_t* s = zip_source_buffer(za, data.data(), data.size(), 0);
    zip_int64_t idx = s ? zip_file_add(za, name.c_str(), s, ZIP_FL_ENC_UTF_8) : -1;
    if (idx < 0) throw std::runtime_error("make_zip: cannot add " + name);
    zip_set_file_compression(za, zip_uint64_t(idx), deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  if (zip_close(za) != 0) throw std::runtime_error("make_zip: cannot write the archive");
  std::string out;
  if (zip_source_open(src) == 0) {
    zip_source_seek(src, 0, SEEK_END);
    zip_int64_t n = zip_source_tell(src);
    zip_source_seek(src, 0, SEEK_SET);
    out.resize(size_t(n > 0 ? n : 0));
    if (n > 0 && zip_source_read(src, out.data(), zip_uint64_t(n)) != n) out.clear();
    zip_source_close(src);
  }
  zip_source_free(src);
  zip_error_fini(&err);
  return out;
}

// A torch.save-style archive: <folder>/data.pkl, <folder>/data/<key> for each storage, <folder>/version.
inline std::string make_torch_zip(const std::string& pickle, const Records& storages, bool deflate = false,
                                  const std::string& folder = "archive") {
  Records r{{folder + "/data.pkl", pickle}};
  for (const auto& [key, data] : storages) r.emplace_back(folder + "/data/" + key, data);
  r.emplace_back(folder + "/version", "3\n");
  return make_zip(r, deflate);
}

template <typename T>
std::string raw_bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

}  // namespace pigment::testing
