#include "io/pytorch_zip.h"

#include <zip.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "core/error.h"
#include "io/mapped_file.h"

namespace pigment {

using pickle::Kind;
using pickle::Value;

namespace {

constexpr uint64_t kMaxPickle = uint64_t(256) << 20;  // data.pkl of real checkpoints is well under 1 MiB
// Deflate cannot expand more than about 1032:1, so a record can never honestly hold more than this.
uint64_t deflate_bound(uint64_t comp) { return comp * 1032 + 1024; }
// Zero-stride views can describe far more elements than their storage holds; cap what we expand them into.
constexpr uint64_t kMaxExpanded = uint64_t(256) << 20;

uint64_t rd(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int k = n; k-- > 0;) v = v << 8 | p[k];
  return v;
}

// Where each entry's data starts, by central-directory order, read from the raw archive. Only used to map
// uncompressed records without copying; any inconsistency returns {} and records are read through libzip.
struct RawEntry {
  std::string name;
  uint64_t data_offset = 0;
};

std::vector<RawEntry> raw_entries(const uint8_t* b, size_t n) {
  if (n < 22) return {};
  size_t eocd = SIZE_MAX;
  for (size_t i = n - 22 + 1, stop = n >= 22 + 65535 ? n - 22 - 65535 : 0; i-- > stop;)
    if (rd(b + i, 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd == SIZE_MAX) return {};
  uint64_t count = rd(b + eocd + 10, 2), cd_size = rd(b + eocd + 12, 4), cd_off = rd(b + eocd + 16, 4);
  if (count == 0xffff || cd_size == 0xffffffff || cd_off == 0xffffffff) {
    if (eocd < 20 || rd(b + eocd - 20, 4) != 0x07064b50) return {};
    uint64_t z = rd(b + eocd - 20 + 8, 8);
    if (z > n || n - z < 56 || rd(b + z, 4) != 0x06064b50) return {};
    count = rd(b + z + 32, 8);
    cd_size = rd(b + z + 40, 8);
    cd_off = rd(b + z + 48, 8);
  }
  if (cd_off > n || cd_size > n - cd_off || count > cd_size / 46) return {};
  std::vector<RawEntry> out;
  out.reserve(size_t(count));
  const uint8_t* p = b + cd_off;
  const uint8_t* end = p + cd_size;
  for (uint64_t e = 0; e < count; ++e) {
    if (end - p < 46 || rd(p, 4) != 0x02014b50) return {};
    uint64_t comp = rd(p + 20, 4), usize = rd(p + 24, 4), off = rd(p + 42, 4);
    size_t nlen = rd(p + 28, 2), xlen = rd(p + 30, 2), clen = rd(p + 32, 2);
    if (size_t(end - p) < 46 + nlen + xlen + clen) return {};
    RawEntry r;
    r.name.assign(reinterpret_cast<const char*>(p + 46), nlen);
    // Zip64 extended information: the 64-bit values present are those whose 32-bit field is saturated.
    const uint8_t* x = p + 46 + nlen;
    const uint8_t* xend = x + xlen;
    while (xend - x >= 4) {
      uint64_t id = rd(x, 2), len = rd(x + 2, 2);
      if (uint64_t(xend - x - 4) < len) return {};
      if (id == 1) {
        const uint8_t* q = x + 4;
        const uint8_t* qend = q + len;
        for (uint64_t* f : {&usize, &comp, &off})
          if (*f == 0xffffffff) {
            if (qend - q < 8) return {};
            *f = rd(q, 8);
            q += 8;
          }
      }
      x += 4 + len;
    }
    if (off > n || n - off < 30 || rd(b + off, 4) != 0x04034b50) return {};
    uint64_t data = off + 30 + rd(b + off + 26, 2) + rd(b + off + 28, 2);
    if (data > n || comp > n - data) return {};
    r.data_offset = data;
    out.push_back(std::move(r));
    p += 46 + nlen + xlen + clen;
  }
  return out;
}

}  // namespace

bool looks_like_zip(const uint8_t* b, size_t n) {
  return n >= 4 && b[0] == 'P' && b[1] == 'K' && ((b[2] == 3 && b[3] == 4) || (b[2] == 5 && b[3] == 6));
}

bool looks_like_legacy_torch(const uint8_t* b, size_t n) {
  return n >= 4 && b[0] == 0x80 && b[1] == 0x02 && b[2] == 0x8a && b[3] == 0x0a;
}

struct PytorchZip::Impl {
  struct Record {
    zip_uint64_t index = 0;
    uint64_t size = 0, comp_size = 0;
    uint16_t method = 0;
    const uint8_t* mapped = nullptr;  // uncompressed data inside the file, when it could be located
    const Value* storage = nullptr;   // the pickle's storage value this record backs
  };

  std::string label;
  std::shared_ptr<const void> owner;
  const uint8_t* bytes = nullptr;
  size_t size = 0;
  zip_t* za = nullptr;
  std::string prefix;  // "archive/"
  std::shared_ptr<const pickle::Document> doc;
  std::unordered_map<std::string, Record> storage_records;  // storage key → its record
  mutable std::mutex mu;                                     // guards za and loaded
  mutable std::unordered_map<std::string, Tensor> loaded;   // storage key → bytes read through libzip

  ~Impl() {
    if (za) zip_discard(za);
  }

  Record stat(zip_uint64_t index, const std::string& name) const {
    zip_stat_t st;
    zip_stat_init(&st);
    PIG_CHECK(zip_stat_index(za, index, ZIP_FL_ENC_RAW, &st) == 0, label, ": cannot read zip entry '", name, "': ",
              zip_strerror(za));
    PIG_CHECK((st.valid & ZIP_STAT_SIZE) && (st.valid & ZIP_STAT_COMP_SIZE) && (st.valid & ZIP_STAT_COMP_METHOD),
              label, ": zip entry '", name, "' has no size information");
    PIG_CHECK(!(st.valid & ZIP_STAT_ENCRYPTION_METHOD) || st.encryption_method == ZIP_EM_NONE, label,
              ": zip entry '", name, "' is encrypted");
    PIG_CHECK(st.comp_method == ZIP_CM_STORE || st.comp_method == ZIP_CM_DEFLATE, label, ": zip entry '", name,
              "' uses compression method ", st.comp_method, " (expected stored or deflate)");
    PIG_CHECK(st.comp_method != ZIP_CM_STORE || st.comp_size == st.size, label, ": zip entry '", name,
              "' is stored uncompressed but its sizes disagree (", st.comp_size, " vs ", st.size, ")");
    PIG_CHECK(st.comp_size <= size, label, ": zip entry '", name, "' claims ", st.comp_size,
              " compressed bytes, more than the whole file (", size, ")");
    Record r;
    r.index = index;
    r.size = st.size;
    r.comp_size = st.comp_size;
    r.method = st.comp_method;
    return r;
  }

  // Reads exactly n bytes from the start of a record into dst (n never exceeds what the record can hold).
  void read(const Record& r, const std::string& name, void* dst, uint64_t n) const {
    zip_file_t* f = zip_fopen_index(za, r.index, 0);
    PIG_CHECK(f, label, ": cannot open zip entry '", name, "': ", zip_strerror(za));
    uint64_t got = 0;
    std::string err;
    while (got < n) {
      zip_int64_t k = zip_fread(f, static_cast<uint8_t*>(dst) + got, n - got);
      if (k < 0) {
        err = zip_file_strerror(f);
        break;
      }
      if (k == 0) break;
      got += uint64_t(k);
    }
    zip_fclose(f);
    PIG_CHECK(err.empty(), label, ": zip entry '", name, "' is corrupt: ", err);
    PIG_CHECK(got == n, label, ": zip entry '", name, "' is short: ", got, " bytes, expected ", n);
  }

  // The first byte of a storage's data: a pointer into the mapped file or into a copy read once.
  std::pair<const uint8_t*, std::shared_ptr<const void>> storage_data(const pickle::StorageRef& s) const {
    const Record& r = storage_records.at(s.key);
    uint64_t need = uint64_t(s.numel) * dtype_size(s.dtype);
    if (r.mapped) return {r.mapped, owner};
    std::lock_guard<std::mutex> lock(mu);
    auto it = loaded.find(s.key);
    if (it == loaded.end()) {
      Tensor buf = Tensor::empty({int64_t(need)}, DType::U8);
      read(r, prefix + "data/" + s.key, buf.raw(), need);
      it = loaded.emplace(s.key, std::move(buf)).first;
    }
    // A Tensor copy shares ownership of the buffer; wrap it so the pointer stays valid with the tensor.
    auto hold = std::make_shared<Tensor>(it->second);
    return {static_cast<const uint8_t*>(hold->raw()), std::shared_ptr<const void>(hold, hold->raw())};
  }
};

PytorchZip PytorchZip::open(const std::string& path) {
  auto file = MappedFile::open(path);
  return parse(file, file->data(), file->size(), path);
}

PytorchZip PytorchZip::parse(std::shared_ptr<const void> owner, const uint8_t* bytes, size_t size,
                             const std::string& label) {
  PytorchZip z;
  z.impl_ = std::make_shared<Impl>();
  Impl& m = *z.impl_;
  m.label = label;
  m.owner = std::move(owner);
  m.bytes = bytes;
  m.size = size;
  PIG_CHECK(size >= 22, label, ": not a PyTorch checkpoint (", size, " bytes, too short for a zip archive)");
  if (looks_like_legacy_torch(bytes, size))
    fail(label, ": legacy (pre-1.6, non-zip) PyTorch serialization is not supported; re-save it with torch.save");
  zip_error_t zerr;
  zip_error_init(&zerr);
  zip_source_t* src = zip_source_buffer_create(bytes, size, 0, &zerr);
  if (!src) {
    std::string why = zip_error_strerror(&zerr);
    zip_error_fini(&zerr);
    fail(label, ": cannot read as a zip archive: ", why);
  }
  m.za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
  if (!m.za) {
    zip_source_free(src);
    std::string why = zip_error_strerror(&zerr);
    zip_error_fini(&zerr);
    fail(label, ": not a valid zip archive (", why, ")");
  }
  zip_error_fini(&zerr);

  // torch.save puts every record under one top-level folder; data.pkl names it.
  zip_int64_t count = zip_get_num_entries(m.za, 0);
  PIG_CHECK(count >= 0, label, ": cannot list the zip archive");
  std::unordered_map<std::string, zip_uint64_t> names;
  for (zip_int64_t i = 0; i < count; ++i) {
    const char* n = zip_get_name(m.za, zip_uint64_t(i), ZIP_FL_ENC_RAW);
    if (!n) continue;
    std::string name(n);
    names.emplace(name, zip_uint64_t(i));
    size_t slash = name.find('/');
    if (m.prefix.empty() && slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0)
      m.prefix = name.substr(0, slash + 1);
  }
  PIG_CHECK(!m.prefix.empty(), label, ": zip archive has no <folder>/data.pkl record: not a PyTorch checkpoint");

  auto byteorder = names.find(m.prefix + "byteorder");
  if (byteorder != names.end()) {
    Impl::Record r = m.stat(byteorder->second, byteorder->first);
    PIG_CHECK(r.size <= 16, label, ": byteorder record is ", r.size, " bytes, expected 'little'");
    std::string order(size_t(r.size), '\0');
    m.read(r, byteorder->first, order.data(), r.size);
    PIG_CHECK(order == "little", label, ": data is stored in '", order, "' byte order; only little-endian is supported");
  }

  std::string pkl_name = m.prefix + "data.pkl";
  Impl::Record pkl = m.stat(names.at(pkl_name), pkl_name);
  PIG_CHECK(pkl.size <= kMaxPickle, label, ": ", pkl_name, " is ", pkl.size, " bytes, more than the ",
            kMaxPickle >> 20, " MiB limit");
  PIG_CHECK(pkl.method == ZIP_CM_STORE || pkl.size <= deflate_bound(pkl.comp_size), label, ": ", pkl_name,
            " claims ", pkl.size, " bytes from ", pkl.comp_size, " compressed, more than deflate can produce");
  std::string pickle_bytes(size_t(pkl.size), '\0');
  m.read(pkl, pkl_name, pickle_bytes.data(), pkl.size);
  m.doc = pickle::unpickle(reinterpret_cast<const uint8_t*>(pickle_bytes.data()), pickle_bytes.size(),
                           label + ": " + pkl_name);

  // Every storage must have a record big enough for it.
  std::vector<RawEntry> raw;
  bool raw_done = false;
  for (const Value* sv : m.doc->storages()) {
    const pickle::StorageRef& s = sv->storage;
    std::string rec = m.prefix + "data/" + s.key;
    auto it = names.find(rec);
    PIG_CHECK(it != names.end(), label, ": storage '", s.key, "' has no record '", rec, "' in the archive");
    Impl::Record r = m.stat(it->second, rec);
    uint64_t need = uint64_t(s.numel) * dtype_size(s.dtype);
    PIG_CHECK(r.size >= need, label, ": record '", rec, "' is short: ", r.size, " bytes, but storage of ", s.numel,
              " x ", dtype_name(s.dtype), " needs ", need);
    PIG_CHECK(r.method == ZIP_CM_STORE || need <= deflate_bound(r.comp_size), label, ": record '", rec, "' has ",
              r.comp_size, " compressed bytes, too few to hold the ", need, " its storage needs");
    if (r.method == ZIP_CM_STORE) {
      if (!raw_done) {
        raw = raw_entries(bytes, size);
        raw_done = true;
      }
      if (r.index < raw.size() && raw[r.index].name == rec) r.mapped = bytes + raw[r.index].data_offset;
    }
    r.storage = sv;
    m.storage_records.emplace(s.key, r);
  }
  return z;
}

const std::string& PytorchZip::label() const { return impl_->label; }
const Value& PytorchZip::root() const { return impl_->doc->root(); }

Tensor PytorchZip::tensor(const Value& node) const {
  const Impl& m = *impl_;
  PIG_CHECK(node.kind == Kind::Tensor && node.tensor.storage, m.label, ": pickle value ", node.repr(60),
            " is not a tensor");
  const pickle::TensorRef& t = node.tensor;
  const pickle::StorageRef& s = t.storage->storage;
  auto rec = m.storage_records.find(s.key);
  PIG_CHECK(rec != m.storage_records.end() && rec->second.storage == t.storage, m.label,
            ": tensor refers to storage '", s.key, "' of another checkpoint");
  DType dt = s.dtype;
  size_t es = dtype_size(dt);
  int64_t numel = 1;
  for (int64_t d : t.size) numel *= d;  // bounded by the unpickler
  if (numel == 0) return Tensor::empty(t.size, dt);
  auto [data, owner] = m.storage_data(s);
  const uint8_t* first = data + size_t(t.offset) * es;
  if (t.contiguous() && reinterpret_cast<uintptr_t>(first) % es == 0) return Tensor::view(owner, first, t.size, dt);
  PIG_CHECK(numel <= s.numel || uint64_t(numel) * es <= kMaxExpanded, m.label, ": tensor view of size ",
            shape_str(t.size), " repeats its storage '", s.key, "' of ", s.numel, " elements too often to expand");
  // Gather a strided (or misaligned) view into a contiguous tensor, innermost dimension first.
  Tensor out = Tensor::empty(t.size, dt);
  uint8_t* dst = static_cast<uint8_t*>(out.raw());
  size_t nd = t.size.size();
  std::vector<int64_t> idx(nd, 0);
  int64_t src = t.offset;
  for (int64_t k = 0; k < numel; ++k) {
    std::memcpy(dst + size_t(k) * es, data + size_t(src) * es, es);
    for (size_t d = nd; d-- > 0;) {
      if (++idx[d] < t.size[d]) {
        src += t.stride[d];
        break;
      }
      src -= t.stride[d] * (t.size[d] - 1);
      idx[d] = 0;
    }
  }
  return out;
}

std::vector<std::pair<std::string, const Value*>> PytorchZip::tensor_nodes() const {
  const Value& r = root();
  const Value* sd = r.get("state_dict");
  return pickle::flatten_tensors(sd && sd->kind == Kind::Dict ? *sd : r, impl_->label);
}

std::map<std::string, Tensor> PytorchZip::tensors() const {
  std::map<std::string, Tensor> out;
  for (const auto& [name, node] : tensor_nodes()) out.emplace(name, tensor(*node));
  return out;
}

std::map<std::string, std::string> PytorchZip::metadata() const {
  std::map<std::string, std::string> out;
  const Value& r = root();
  if (r.kind != Kind::Dict) return out;
  auto scalar = [](const Value* v) {
    return v->kind == Kind::None || v->kind == Kind::Bool || v->kind == Kind::Int || v->kind == Kind::Float ||
           v->kind == Kind::Str;
  };
  for (const auto& [k, v] : r.entries) {
    if (out.size() >= 256) break;
    std::string key = k->kind == Kind::Str ? k->s.substr(0, 200) : k->repr(80);
    if (v->kind == Kind::Str) {
      out[key] = v->s.size() > 1000 ? v->s.substr(0, 1000) + "..." : v->s;
    } else if (scalar(v)) {
      out[key] = v->repr();
    } else if ((v->kind == Kind::List || v->kind == Kind::Tuple) && v->items.size() <= 64 &&
               std::all_of(v->items.begin(), v->items.end(), scalar)) {
      out[key] = v->repr(1000);
    }
  }
  return out;
}

}  // namespace pigment
