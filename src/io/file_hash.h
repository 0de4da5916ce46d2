// File hashes as A1111 shows them: "Model hash" is the first 10 hex digits of the file's SHA-256. Hashing a
// multi-gigabyte checkpoint takes seconds, so results are cached in ~/.cache/pigment/hashes.json keyed by path,
// size and modification time (as A1111 caches them in its cache.json).
#pragma once
#include <cstdint>
#include <string>

namespace pigment {

// 64 lowercase hex digits of the bytes from `offset` to the end.
std::string sha256_file(const std::string& path, uint64_t offset = 0);
// kohya's / sd-webui-additional-networks' hash of a .safetensors file: SHA-256 of everything after the header (the
// 8-byte little-endian header length and the JSON header are skipped), so editing metadata keeps the hash.
std::string addnet_hash(const std::string& path);
// The hash A1111 shows in "Lora hashes" (first 12 digits) for a LoRA/LyCORIS file: a .safetensors file's
// `sshs_model_hash` metadata if present, else its addnet_hash; any other file's sha256_file.
std::string lora_file_hash(const std::string& path);
// The first 10 hex digits of sha256_file, cached. A folder (diffusers) has no hash: "".
std::string model_short_hash(const std::string& path);

}  // namespace pigment
