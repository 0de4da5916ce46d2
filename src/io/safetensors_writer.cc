#include "io/safetensors_writer.h"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace pigment {

SafeTensorsWriter::SafeTensorsWriter(std::string path, std::vector<Entry> entries,
                                     const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)), tmp_(path_ + ".tmp") {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string> names;
  for (const auto& e : entries) {
    PIG_CHECK(e.name != "__metadata__" && names.insert(e.name).second, path_, ": tensor '", e.name,
              "' declared twice (or reserved)");
    uint64_t n = uint64_t(shape_numel(e.shape)) * dtype_size(e.dtype);
    header[e.name] = {{"dtype", std::string(dtype_name(e.dtype))}, {"shape", e.shape},
                      {"data_offsets", {total_, total_ + n}}};
    total_ += n;
  }
  std::string h = header.dump();
  while ((h.size() + 8) % 8) h.push_back(' ');  // data starts 8-byte aligned
  f_ = std::fopen(tmp_.c_str(), "wb");
  PIG_CHECK(f_, path_, ": cannot write: ", std::strerror(errno));
  std::setvbuf(f_, nullptr, _IOFBF, 8 << 20);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(h.size()) >> (8 * i));
  if (std::fwrite(len, 1, 8, f_) != 8 || std::fwrite(h.data(), 1, h.size(), f_) != h.size()) {
    int err = errno;
    std::fclose(f_);
    f_ = nullptr;
    std::remove(tmp_.c_str());
    fail(path_, ": write failed: ", std::strerror(err));
  }
}

SafeTensorsWriter::~SafeTensorsWriter() {
  if (f_) std::fclose(f_);
  if (!done_) std::remove(tmp_.c_str());
}

void SafeTensorsWriter::write(const void* data, size_t bytes) {
  PIG_CHECK(f_ && !done_, path_, ": write after finish");
  PIG_CHECK(written_ + bytes <= total_, path_, ": ", written_ + bytes, " data bytes written, but the header declares ",
            total_);
  PIG_CHECK(bytes == 0 || std::fwrite(data, 1, bytes, f_) == bytes, path_, ": write failed: ", std::strerror(errno));
  written_ += bytes;
}

void SafeTensorsWriter::finish() {
  PIG_CHECK(f_ && !done_, path_, ": finish called twice");
  PIG_CHECK(written_ == total_, path_, ": only ", written_, " of ", total_, " data bytes were written");
  int rc = std::fclose(f_);
  f_ = nullptr;
  PIG_CHECK(rc == 0, path_, ": write failed: ", std::strerror(errno));
  PIG_CHECK(std::rename(tmp_.c_str(), path_.c_str()) == 0, path_, ": cannot rename ", tmp_, ": ", std::strerror(errno));
  done_ = true;
}

}  // namespace pigment
