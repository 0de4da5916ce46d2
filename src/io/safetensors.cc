#include "io/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/error.h"

namespace pigment {

namespace {
constexpr uint64_t kMaxHeader = 100ull << 20;  // 100 MiB, as the reference implementation allows
}

SafeTensors SafeTensors::open(const std::string& path) {
  auto file = MappedFile::open(path);
  return parse(file, file->data(), file->size(), path);
}

SafeTensors SafeTensors::parse(std::shared_ptr<const void> owner, const uint8_t* bytes, size_t size,
                               const std::string& label) {
  SafeTensors st;
  st.label_ = label;
  st.owner_ = std::move(owner);
  PIG_CHECK(size >= 8, label, ": not a safetensors file (", size, " bytes, shorter than the 8-byte header length)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | bytes[i];
  PIG_CHECK(n <= kMaxHeader, label, ": safetensors header length ", n, " exceeds the 100 MiB limit");
  PIG_CHECK(n <= size - 8, label, ": safetensors header length ", n, " runs past the end of the file (",
            size, " bytes)");
  PIG_CHECK(n >= 2 && bytes[8] == '{', label, ": safetensors header is not a JSON object");
  const char* hbeg = reinterpret_cast<const char*>(bytes + 8);
  std::set<std::string> seen;
  std::string dup;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(
        hbeg, hbeg + n,
        [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
          if (depth == 1 && ev == nlohmann::json::parse_event_t::key) {
            std::string k = parsed.get<std::string>();
            if (!seen.insert(k).second && dup.empty()) dup = k;
          }
          return true;
        });
  } catch (const nlohmann::json::exception& e) {
    fail(label, ": safetensors header is not valid JSON (", e.what(), ")");
  }
  PIG_CHECK(dup.empty(), label, ": safetensors header names tensor '", dup, "' twice");
  PIG_CHECK(header.is_object(), label, ": safetensors header is not a JSON object");
  uint64_t data_size = size - 8 - n;
  st.data_ = bytes + 8 + n;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      PIG_CHECK(v.is_object(), label, ": __metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        PIG_CHECK(m.value().is_string(), label, ": __metadata__ value of '", m.key(), "' is not a string");
        st.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    PIG_CHECK(v.is_object(), label, ": entry for tensor '", name, "' is not an object");
    SafeTensorsEntry e;
    e.name = name;
    auto dt = v.find("dtype");
    PIG_CHECK(dt != v.end() && dt->is_string(), label, ": tensor '", name, "' has no dtype");
    auto dtype = dtype_from_name(dt->get<std::string>());
    PIG_CHECK(dtype.has_value(), label, ": tensor '", name, "' has unknown dtype '", dt->get<std::string>(), "'");
    e.dtype = *dtype;
    auto sh = v.find("shape");
    PIG_CHECK(sh != v.end() && sh->is_array(), label, ": tensor '", name, "' has no shape array");
    uint64_t count = 1;
    bool overflow = false;
    for (const auto& d : *sh) {
      PIG_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0), label, ": tensor '",
                name, "' has a negative or non-integer dimension");
      uint64_t dim = d.get<uint64_t>();
      PIG_CHECK(dim < (1ull << 62), label, ": tensor '", name, "' has an absurd dimension ", dim);
      if (dim != 0 && count > (~0ull) / dim) overflow = true;
      count *= dim;
      e.shape.push_back(int64_t(dim));
    }
    uint64_t esz = dtype_size(e.dtype);
    PIG_CHECK(!overflow && count <= (~0ull) / esz, label, ": tensor '", name, "' shape ", shape_str(e.shape),
              " overflows");
    auto off = v.find("data_offsets");
    PIG_CHECK(off != v.end() && off->is_array() && off->size() == 2 && (*off)[0].is_number_unsigned() &&
                  (*off)[1].is_number_unsigned(),
              label, ": tensor '", name, "' needs data_offsets [begin, end]");
    e.begin = (*off)[0].get<uint64_t>();
    e.end = (*off)[1].get<uint64_t>();
    PIG_CHECK(e.begin <= e.end && e.end <= data_size, label, ": tensor '", name, "' data_offsets [", e.begin, ", ",
              e.end, "] lie outside the data area of ", data_size, " bytes");
    PIG_CHECK(e.end - e.begin == count * esz, label, ": tensor '", name, "' has ", e.end - e.begin,
              " bytes but shape ", shape_str(e.shape), " of ", dtype_name(e.dtype), " needs ", count * esz);
    for (auto k = v.begin(); k != v.end(); ++k)
      PIG_CHECK(k.key() == "dtype" || k.key() == "shape" || k.key() == "data_offsets", label, ": tensor '", name,
                "' has unexpected field '", k.key(), "'");
    st.entries_.push_back(std::move(e));
  }
  std::sort(st.entries_.begin(), st.entries_.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  for (const auto& e : st.entries_) {
    PIG_CHECK(e.begin >= pos, label, ": tensor '", e.name, "' overlaps the tensor before it");
    PIG_CHECK(e.begin == pos, label, ": gap of ", e.begin - pos, " bytes before tensor '", e.name,
              "' (the data area must be fully indexed)");
    pos = e.end;
  }
  PIG_CHECK(pos == data_size, label, ": ", data_size - pos, " bytes after the last tensor are not indexed");
  for (size_t i = 0; i < st.entries_.size(); ++i) st.index_[st.entries_[i].name] = i;
  return st;
}

Tensor SafeTensors::get(const std::string& name) const {
  auto it = index_.find(name);
  PIG_CHECK(it != index_.end(), label_, ": no tensor named '", name, "'");
  const auto& e = entries_[it->second];
  return Tensor::view(owner_, data_ + e.begin, e.shape, e.dtype);
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    PIG_CHECK(names.insert(name).second, path, ": tensor '", name, "' written twice");
    header[name] = {{"dtype", std::string(dtype_name(t.dtype()))}, {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h.push_back(' ');
  // The temporary name carries the process id: two processes writing the same file (ranks of a --distributed run
  // filling one latent cache) never write into each other's temporary.
  std::string tmp = path + ".tmp" + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  PIG_CHECK(f, path, ": cannot write: ", std::strerror(errno));
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(h.size()) >> (8 * i));
  bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(h.data(), 1, h.size(), f) == h.size();
  for (const auto& [name, t] : tensors)
    if (ok && t.nbytes()) ok = std::fwrite(t.raw(), 1, t.nbytes(), f) == t.nbytes();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    fail(path, ": write failed: ", std::strerror(errno));
  }
}

}  // namespace pigment
