// Hand-made pickles and torch.save-style archives for the io tests and the fuzz seed corpus (no Python or torch
// needed): the opcode writer and the zip writer are the library's own (io/pickle_writer.h, io/zip_writer.h); this
// header only adds archives built from raw records, which tests use to plant malformed pickles and storages.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "io/pickle_writer.h"
#include "io/zip_writer.h"

namespace pigment::testing {

using PickleWriter = pickle::OpcodeWriter;
using Records = std::vector<std::pair<std::string, std::string>>;

// A zip archive in memory holding the given records (name → content), stored or deflated.
inline std::string make_zip(const Records& records, bool deflate = false) {
  ZipWriter z;
  for (const auto& [name, data] : records) z.add(name, data, deflate);
  z.finish();
  return z.bytes();
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
