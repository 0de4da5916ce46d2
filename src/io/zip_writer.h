// Writes zip archives as PyTorch's writer does: records stored uncompressed, each record's data starting at a
// multiple of 64 bytes (the local header's extra field is padded, as PyTorchStreamWriter pads it), zip64 fields
// where sizes or offsets need them. A file is written to a temporary name beside the target, synced and renamed
// into place by finish(), so a crash never leaves half an archive under the real name. Deflated records are also
// possible (tests write them; torch never does).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace pigment {

class ZipWriter {
 public:
  // An archive in memory (bytes()).
  ZipWriter();
  // An archive at `path` (written as <path>.tmp-<pid>, renamed by finish()).
  explicit ZipWriter(std::string path);
  ~ZipWriter();  // removes the temporary file unless finish() succeeded
  ZipWriter(const ZipWriter&) = delete;
  ZipWriter& operator=(const ZipWriter&) = delete;

  // Zip64 fields on every record even when small (for tests of the zip64 path; readers must accept both).
  void force_zip64(bool on) { force_zip64_ = on; }

  void add(const std::string& name, const void* data, size_t size, bool deflate = false);
  void add(const std::string& name, const std::string& data, bool deflate = false) {
    add(name, data.data(), data.size(), deflate);
  }
  // Writes the central directory; for a file, syncs and renames it into place.
  void finish();
  const std::string& bytes() const { return mem_; }

 private:
  struct Entry {
    std::string name;
    uint32_t crc = 0;
    uint64_t comp = 0, size = 0, offset = 0;
    uint16_t method = 0;
  };
  void put(const void* p, size_t n);
  void put_le(uint64_t v, int bytes);

  std::string path_, tmp_, mem_;
  std::FILE* f_ = nullptr;
  uint64_t pos_ = 0;
  std::vector<Entry> entries_;
  bool force_zip64_ = false, done_ = false;
};

}  // namespace pigment
