// File hashes as A1111 shows them: "Model hash" is the first 10 hex digits of the file's SHA-256. Hashing a
// multi-gigabyte checkpoint takes seconds, so results are cached in ~/.cache/pigment/hashes.json keyed by path,
// size and modification time (as A1111 caches them in its cache.json).
#pragma once
#include <string>

namespace pigment {

std::string sha256_file(const std::string& path);  // 64 lowercase hex digits
// The first 10 hex digits of sha256_file, cached. A folder (diffusers) has no hash: "".
std::string model_short_hash(const std::string& path);

}  // namespace pigment
