// torch.save's file format, written from C++: a zip archive (io/zip_writer.h) holding <archive>/data.pkl (the
// protocol-2 pickle of io/pickle_writer.h), <archive>/byteorder ("little"), <archive>/data/<key> (each tensor's
// bytes, in storage-key order) and <archive>/version ("3"). torch.load and pigment's PytorchZip read it. Used for
// A1111's .pt files (hypernetworks, textual-inversion embeddings) and their .optim optimizer states.
#pragma once
#include <string>

#include "io/pickle_writer.h"

namespace pigment {

// Writes `root` to `path` atomically (temporary file, fsync, rename). `archive` is the folder name inside the zip
// (torch uses the file stem; readers accept any single folder).
void torch_save(const std::string& path, const pickle::Object& root, const std::string& archive = "archive");
// The same archive in memory.
std::string torch_save_bytes(const pickle::Object& root, const std::string& archive = "archive");

}  // namespace pigment
