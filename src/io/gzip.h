// gzip (and zlib) decompression of a whole buffer in memory, through zlib: the built-in CLIP merges table and
// OpenAI's bpe_simple_vocab_16e6.txt.gz.
#pragma once
#include <string>
#include <string_view>

namespace pigment {

// The decompressed bytes of a gzip stream (or a zlib stream: the header tells); throws pigment::Error naming
// `what` when the data is not one, is truncated or is corrupt.
std::string gunzip(std::string_view data, const std::string& what);

// gunzip of a file's contents.
std::string gunzip_file(const std::string& path);

}  // namespace pigment
