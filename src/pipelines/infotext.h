// A1111's "infotext": the generation recipe stored in a PNG's `parameters` text chunk, readable by the A1111
// "PNG Info" tab, civitai and other tools. Format: prompt line(s), "Negative prompt: …" line (omitted when
// empty), then one line of "Key: value" pairs joined by ", " (values with ',', ':' or newlines JSON-quoted).
#pragma once
#include <cstdint>
#include <optional>
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

// Strict readers of a parameter's value, for `--from-png` and any other reader of infotexts. Absent key: nullopt.
// A value that is not wholly the expected form (surrounding spaces aside) fails with one line that names `source`
// (the file), the field and the value: "x.png: infotext field 'Steps': '3abc' is not an integer". Never a partial
// read ("3abc" is not 3) and never a library message such as "stoll".
std::optional<int64_t> infotext_integer(const Infotext& info, const std::string& key, const std::string& source);
// A finite decimal number ("7", "7.5", "1e-3").
std::optional<double> infotext_number(const Infotext& info, const std::string& key, const std::string& source);
// "WxH" with two positive integers (A1111's Size; Hires resize, where one side may be 0 = unset: allow_zero): {W, H}.
std::optional<std::pair<int, int>> infotext_size(const Infotext& info, const std::string& key,
                                                 const std::string& source, bool allow_zero = false);

// Numbers as A1111 prints them: integral values without a decimal point ("7"), others in shortest form ("7.5").
std::string format_number(double v);

}  // namespace pigment
