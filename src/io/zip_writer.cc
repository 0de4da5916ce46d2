#include "io/zip_writer.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "core/error.h"

namespace pigment {

namespace {
constexpr uint64_t kSat32 = 0xffffffffu;
constexpr uint64_t kAlign = 64;
// 1980-01-01 00:00 in DOS time: torch writes a fixed date too, so archives do not depend on the clock.
constexpr uint16_t kDosTime = 0, kDosDate = (0 << 9) | (1 << 5) | 1;

std::string deflate_raw(const void* data, size_t size) {
  z_stream z{};
  PIG_CHECK(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK, "zip writer: deflateInit2 failed");
  std::string out(deflateBound(&z, uLong(size)) + 16, '\0');
  z.next_in = static_cast<Bytef*>(const_cast<void*>(data));
  z.avail_in = uInt(size);
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = uInt(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  PIG_CHECK(rc == Z_STREAM_END, "zip writer: deflate failed");
  return out;
}

uint32_t crc_of(const void* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (size > 0) {  // zlib takes uInt lengths
    const size_t n = size > (size_t(1) << 30) ? (size_t(1) << 30) : size;
    crc = crc32(crc, p, uInt(n));
    p += n;
    size -= n;
  }
  return uint32_t(crc);
}
}  // namespace

ZipWriter::ZipWriter() = default;

ZipWriter::ZipWriter(std::string path) : path_(std::move(path)) {
  tmp_ = path_ + ".tmp-" + std::to_string(::getpid());
  f_ = std::fopen(tmp_.c_str(), "wb");
  PIG_CHECK(f_, path_, ": cannot write (", std::strerror(errno), ")");
}

ZipWriter::~ZipWriter() {
  if (f_) std::fclose(f_);
  if (!path_.empty() && !done_) std::remove(tmp_.c_str());
}

void ZipWriter::put(const void* p, size_t n) {
  if (n == 0) return;
  if (f_) {
    PIG_CHECK(std::fwrite(p, 1, n, f_) == n, path_, ": write failed (", std::strerror(errno), ")");
  } else {
    mem_.append(static_cast<const char*>(p), n);
  }
  pos_ += n;
}

void ZipWriter::put_le(uint64_t v, int bytes) {
  unsigned char b[8];
  for (int k = 0; k < bytes; ++k) b[k] = uint8_t(v >> (8 * k));
  put(b, size_t(bytes));
}

void ZipWriter::add(const std::string& name, const void* data, size_t size, bool deflate) {
  PIG_CHECK(!done_, "zip writer: add after finish");
  PIG_CHECK(!name.empty() && name.size() < 65536, "zip writer: bad record name '", name, "'");
  for (const auto& e : entries_) PIG_CHECK(e.name != name, "zip writer: the record ", name, " is written twice");
  Entry e;
  e.name = name;
  e.offset = pos_;
  e.size = size;
  e.crc = crc_of(data, size);
  std::string packed;
  if (deflate) {
    packed = deflate_raw(data, size);
    e.method = 8;
    e.comp = packed.size();
  } else {
    e.comp = size;
  }
  const bool z64 = force_zip64_ || e.size >= kSat32 || e.comp >= kSat32;
  // Local header: 30 bytes + name + extra; the extra field holds the zip64 sizes when needed and is padded with
  // an "FB" block (id 0x4246, as PyTorch's writer) so that the data starts on a 64-byte boundary.
  uint64_t extra = z64 ? 20 : 0;
  const uint64_t base = pos_ + 30 + name.size() + extra;
  uint64_t pad = (kAlign - base % kAlign) % kAlign;
  if (pad > 0 && pad < 4) pad += kAlign;  // a block needs at least its 4-byte header
  extra += pad;
  put_le(0x04034b50, 4);
  put_le(z64 ? 45 : 20, 2);
  put_le(0, 2);  // flags
  put_le(e.method, 2);
  put_le(kDosTime, 2);
  put_le(kDosDate, 2);
  put_le(e.crc, 4);
  put_le(z64 ? kSat32 : e.comp, 4);
  put_le(z64 ? kSat32 : e.size, 4);
  put_le(name.size(), 2);
  put_le(extra, 2);
  put(name.data(), name.size());
  if (z64) {
    put_le(0x0001, 2);
    put_le(16, 2);
    put_le(e.size, 8);
    put_le(e.comp, 8);
  }
  if (pad > 0) {
    put_le(0x4246, 2);
    put_le(pad - 4, 2);
    const std::string zeros(size_t(pad - 4), '\0');
    put(zeros.data(), zeros.size());
  }
  if (deflate) put(packed.data(), packed.size());
  else put(data, size);
  entries_.push_back(std::move(e));
}

void ZipWriter::finish() {
  PIG_CHECK(!done_, "zip writer: finish twice");
  const uint64_t cd_start = pos_;
  bool any64 = force_zip64_ || entries_.size() >= 0xffff;
  for (const Entry& e : entries_) {
    const bool big_size = force_zip64_ || e.size >= kSat32 || e.comp >= kSat32;
    const bool big_off = force_zip64_ || e.offset >= kSat32;
    any64 = any64 || big_size || big_off;
    const uint64_t x64 = (big_size ? 16 : 0) + (big_off ? 8 : 0);
    put_le(0x02014b50, 4);
    put_le(big_size || big_off ? 45 : 20, 2);  // version made by (MS-DOS attributes)
    put_le(big_size || big_off ? 45 : 20, 2);  // version needed
    put_le(0, 2);
    put_le(e.method, 2);
    put_le(kDosTime, 2);
    put_le(kDosDate, 2);
    put_le(e.crc, 4);
    put_le(big_size ? kSat32 : e.comp, 4);
    put_le(big_size ? kSat32 : e.size, 4);
    put_le(e.name.size(), 2);
    put_le(x64 ? x64 + 4 : 0, 2);
    put_le(0, 2);  // comment
    put_le(0, 2);  // disk
    put_le(0, 2);  // internal attributes
    put_le(0, 4);  // external attributes
    put_le(big_off ? kSat32 : e.offset, 4);
    put(e.name.data(), e.name.size());
    if (x64) {
      put_le(0x0001, 2);
      put_le(x64, 2);
      if (big_size) {
        put_le(e.size, 8);
        put_le(e.comp, 8);
      }
      if (big_off) put_le(e.offset, 8);
    }
  }
  const uint64_t cd_size = pos_ - cd_start;
  any64 = any64 || cd_start >= kSat32 || cd_size >= kSat32;
  if (any64) {
    const uint64_t z64_eocd = pos_;
    put_le(0x06064b50, 4);
    put_le(44, 8);
    put_le(45, 2);
    put_le(45, 2);
    put_le(0, 4);
    put_le(0, 4);
    put_le(entries_.size(), 8);
    put_le(entries_.size(), 8);
    put_le(cd_size, 8);
    put_le(cd_start, 8);
    put_le(0x07064b50, 4);  // locator
    put_le(0, 4);
    put_le(z64_eocd, 8);
    put_le(1, 4);
  }
  put_le(0x06054b50, 4);
  put_le(0, 2);
  put_le(0, 2);
  put_le(any64 ? 0xffff : entries_.size(), 2);
  put_le(any64 ? 0xffff : entries_.size(), 2);
  put_le(any64 ? kSat32 : cd_size, 4);
  put_le(any64 ? kSat32 : cd_start, 4);
  put_le(0, 2);
  if (f_) {
    const bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
    const bool closed = std::fclose(f_) == 0;
    f_ = nullptr;
    PIG_CHECK(ok && closed, path_, ": write failed (", std::strerror(errno), ")");
    PIG_CHECK(std::rename(tmp_.c_str(), path_.c_str()) == 0, path_, ": cannot rename ", tmp_, " (",
              std::strerror(errno), ")");
  }
  done_ = true;
}

}  // namespace pigment
