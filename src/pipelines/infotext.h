// A1111's "infotext": the generation recipe stored in a PNG's `parameters` text chunk, readable by the A1111
// "PNG Info" tab, civitai and other tools. Format: prompt line(s), "Negative prompt: …" line (omitted when
// empty), then one line of "Key: value" pairs joined by ", " (values with ',', ':' or newlines JSON-quoted).
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace pigment {

struct Infotext {
  std::string prompt;
  std::string negative_prompt;
  // Ordered "Key: value" parameters, in A1111's key order (Steps, Sampler, Schedule type, CFG scale, Seed, Size,
  // Model hash, Model, …). Values are stored unquoted.
  std::vector<std::pair<std::string, std::string>> params;

  const std::string* find(const std::string& key) const;
  void set(const std::string& key, const std::string& value);  // replaces or appends
};

std::string format_infotext(const Infotext& info);
// Parses as A1111's parse_generation_parameters: the last line holds the parameters when it yields at least
// three "Key: value" matches; lines before the first "Negative prompt:" form the prompt.
Infotext parse_infotext(const std::string& text);

// Numbers as A1111 prints them: integral values without a decimal point ("7"), others in shortest form ("7.5").
std::string format_number(double v);

}  // namespace pigment
