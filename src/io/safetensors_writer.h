// A streaming safetensors writer: the header is written from the declared tensor list, then the data is appended
// tensor by tensor in any chunk sizes, so a multi-gigabyte file never has to be in memory. Like
// write_safetensors, it writes to a temporary file and renames it into place only when every byte was written.
#pragma once
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace pigment {

class SafeTensorsWriter {
 public:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
  };
  // Data follows in the order of `entries`.
  SafeTensorsWriter(std::string path, std::vector<Entry> entries, const std::map<std::string, std::string>& metadata = {});
  ~SafeTensorsWriter();  // removes the temporary file unless finish() succeeded
  SafeTensorsWriter(const SafeTensorsWriter&) = delete;
  SafeTensorsWriter& operator=(const SafeTensorsWriter&) = delete;

  // Appends bytes of the current tensor (and, past its end, of the next ones).
  void write(const void* data, size_t bytes);
  // Checks that every declared byte was written, then renames the file into place.
  void finish();
  uint64_t data_bytes() const { return total_; }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  uint64_t total_ = 0, written_ = 0;
  bool done_ = false;
};

}  // namespace pigment
