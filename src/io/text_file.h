// Whole small text files (configs, captions, tokenizer tables) read into a string, with errors that name the file.
#pragma once
#include <cstdint>
#include <string>

namespace pigment {

// The bytes of `path`. `what` says in errors what the file is ("--merges", "a caption"); files over `max_bytes`
// are refused (a text file that large is a mistake, not data to read whole).
std::string read_text_file(const std::string& path, const std::string& what, uint64_t max_bytes = 256ull << 20);

}  // namespace pigment
