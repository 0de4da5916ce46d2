#include "models/random_init.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "io/safetensors_writer.h"
#include "models/model_family.h"

namespace pigment {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// splitmix64's output function.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// Normal quantiles at (i + 1/2) / 65536: a 16-bit random index gives a standard normal draw (|x| < 4.4) at the
// cost of a table lookup, which keeps writing billions of weights fast.
const std::array<float, 65536>& normal_table() {
  static const std::array<float, 65536> table = [] {
    std::array<float, 65536> t{};
    const double inv_sqrt2 = 1.0 / std::sqrt(2.0), inv_sqrt2pi = 1.0 / std::sqrt(2.0 * M_PI);
    double x = -4.5;
    for (int i = 0; i < 32768; ++i) {  // lower half by Newton on the CDF, warm-started; upper half by symmetry
      double p = (i + 0.5) / 65536.0;
      for (int it = 0; it < 50; ++it) {
        double step = (0.5 * std::erfc(-x * inv_sqrt2) - p) / (inv_sqrt2pi * std::exp(-0.5 * x * x));
        x -= step;
        if (std::fabs(step) < 1e-12) break;
      }
      t[i] = float(x);
      t[65535 - i] = float(-x);
    }
    return t;
  }();
  return table;
}

struct Rule {
  bool constant = true;
  float value = 0;  // constant
  float stddev = 0;
  uint64_t seed = 0;
};

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

Rule rule_for(uint64_t seed, const std::string& full_name, const Shape& shape) {
  Rule r;
  if (shape.size() <= 1) {
    r.value = ends_with(full_name, ".weight") ? 1.f : 0.f;  // norm scales 1, biases 0
    return r;
  }
  r.constant = false;
  bool embedding = full_name.find("token_embedding") != std::string::npos ||
                   full_name.find("position_embedding") != std::string::npos;
  int64_t fan_in = shape_numel(shape) / std::max<int64_t>(1, shape[0]);
  r.stddev = embedding ? 1.f : float(1.0 / std::sqrt(double(std::max<int64_t>(1, fan_in))));
  r.seed = mix64(seed * kGolden ^ fnv1a(full_name));
  return r;
}

inline float rule_value(const Rule& r, const std::array<float, 65536>& table, int64_t i) {
  if (r.constant) return r.value;
  uint64_t h = mix64(r.seed + uint64_t(i >> 2) * kGolden);
  return table[uint16_t(h >> (16 * (i & 3)))] * r.stddev;
}

// One file tensor and the pigment parameters it is made of.
struct FileTensor {
  std::string key;
  Shape shape;
  KeyTransform transform = KeyTransform::Same;
  std::vector<Rule> parts;  // by part index (one unless FusedPart)
  int64_t part_numel = 0;
};

std::vector<FileTensor> file_tensors(const Layout& layout, uint64_t seed, bool diffusers_names) {
  std::vector<FileTensor> out;
  std::map<std::string, size_t> index;
  for (const auto& e : layout) {
    std::string key = diffusers_names ? e.name : e.file_key;
    auto [it, fresh] = index.emplace(key, out.size());
    if (fresh) {
      FileTensor f;
      f.key = key;
      f.shape = diffusers_names ? e.shape : e.file_shape;
      f.transform = diffusers_names ? KeyTransform::Same : e.transform;
      f.parts.resize(f.transform == KeyTransform::FusedPart ? e.parts : 1);
      f.part_numel = shape_numel(e.shape);
      out.push_back(std::move(f));
    }
    FileTensor& f = out[it->second];
    f.parts[f.transform == KeyTransform::FusedPart ? e.part : 0] = rule_for(seed, e.full_name(), e.shape);
  }
  return out;
}

// The 65536 possible values of a rule, already in the output dtype: generating an element is then one hash per
// four elements and a table lookup, with no per-element conversion. Tables are shared by rules of equal stddev.
template <typename T>
class Encoder {
 public:
  explicit Encoder(DType dtype) : dtype_(dtype) {}
  T encode(float v) const {
    T out;
    convert_from_f32(dtype_, &v, &out, 1);
    return out;
  }
  const T* table(float stddev) {
    auto [it, fresh] = tables_.try_emplace(stddev);
    if (fresh) {
      const auto& n = normal_table();
      std::vector<float> scaled(n.size());
      for (size_t i = 0; i < n.size(); ++i) scaled[i] = n[i] * stddev;
      it->second.resize(n.size());
      convert_from_f32(dtype_, scaled.data(), it->second.data(), n.size());
    }
    return it->second.data();
  }

 private:
  DType dtype_;
  std::map<float, std::vector<T>> tables_;
};

// Elements [begin, end) of one rule into out[0 .. end - begin).
template <typename T>
void fill_rule(const Rule& r, const T* table, T constant, int64_t begin, int64_t end, T* out) {
  if (r.constant) {
    std::fill(out, out + (end - begin), constant);
    return;
  }
  constexpr int64_t kBlock = 1 << 14;  // multiple of 4: every block starts a hash
  int64_t first_block = begin / kBlock, last_block = (end + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (end - begin > 4 * kBlock)
  for (int64_t b = first_block; b < last_block; ++b) {
    int64_t lo = std::max(begin, b * kBlock), hi = std::min(end, (b + 1) * kBlock);
    for (int64_t i = lo; i < hi;) {
      uint64_t h = mix64(r.seed + uint64_t(i >> 2) * kGolden);
      for (int lane = int(i & 3); lane < 4 && i < hi; ++lane, ++i) out[i - begin] = table[uint16_t(h >> (16 * lane))];
    }
  }
}

// Elements [begin, begin + n) of a file tensor, in the output dtype.
template <typename T>
void generate(const FileTensor& f, Encoder<T>& enc, int64_t begin, int64_t n, T* out) {
  std::vector<const T*> tables;
  std::vector<T> constants;
  for (const auto& r : f.parts) {
    tables.push_back(r.constant ? nullptr : enc.table(r.stddev));
    constants.push_back(enc.encode(r.value));
  }
  int64_t end = begin + n;
  switch (f.transform) {
    case KeyTransform::Same:
    case KeyTransform::Reshape:
      fill_rule(f.parts[0], tables[0], constants[0], begin, end, out);
      break;
    case KeyTransform::FusedPart:
      // The parts are consecutive row blocks of the file tensor.
      for (int64_t i = begin; i < end;) {
        int64_t p = i / f.part_numel, stop = std::min(end, (p + 1) * f.part_numel);
        fill_rule(f.parts[p], tables[p], constants[p], i - p * f.part_numel, stop - p * f.part_numel, out + (i - begin));
        i = stop;
      }
      break;
    case KeyTransform::Transpose: {
      // file [R, C] holds the pigment [C, R] tensor transposed
      const Rule& r = f.parts[0];
      int64_t R = f.shape[0], C = f.shape[1];
      for (int64_t i = begin; i < end; ++i) {
        int64_t k = (i % C) * R + i / C;
        out[i - begin] = r.constant ? constants[0]
                                    : tables[0][uint16_t(mix64(r.seed + uint64_t(k >> 2) * kGolden) >> (16 * (k & 3)))];
      }
      break;
    }
  }
}

template <typename T>
void write_tensors_as(SafeTensorsWriter& w, const std::vector<FileTensor>& tensors, DType dtype) {
  Encoder<T> enc(dtype);
  constexpr int64_t kChunk = int64_t(1) << 23;  // elements per write: bounded memory whatever the tensor
  std::vector<T> buf;
  for (const auto& t : tensors) {
    int64_t numel = shape_numel(t.shape);
    for (int64_t b = 0; b < numel; b += kChunk) {
      int64_t n = std::min(kChunk, numel - b);
      buf.resize(size_t(n));
      generate(t, enc, b, n, buf.data());
      w.write(buf.data(), size_t(n) * sizeof(T));
    }
  }
}

void write_tensors(const std::string& path, const std::vector<FileTensor>& tensors, DType dtype,
                   const std::map<std::string, std::string>& metadata) {
  std::vector<SafeTensorsWriter::Entry> entries;
  for (const auto& t : tensors) entries.push_back({t.key, dtype, t.shape});
  SafeTensorsWriter w(path, entries, metadata);
  if (dtype == DType::F32)
    write_tensors_as<uint32_t>(w, tensors, dtype);
  else
    write_tensors_as<uint16_t>(w, tensors, dtype);
  w.finish();
}

void check_dtype(DType d) {
  PIG_CHECK(d == DType::F32 || d == DType::F16 || d == DType::BF16, "--dtype: expected f32, f16 or bf16, got ",
            dtype_name(d));
}

void write_json(const fs::path& p, const json& j) {
  std::ofstream f(p);
  PIG_CHECK(f, p.string(), ": cannot write");
  f << j.dump(2) << "\n";
  PIG_CHECK(f.good(), p.string(), ": write failed");
}

std::string torch_dtype(DType d) {
  return d == DType::F16 ? "float16" : d == DType::BF16 ? "bfloat16" : "float32";
}

}  // namespace

float random_init_value(uint64_t seed, const std::string& full_name, const Shape& shape, int64_t index) {
  return rule_value(rule_for(seed, full_name, shape), normal_table(), index);
}

namespace {

std::vector<Layout> single_file_layouts(const FamilyPreset& p) {
  std::vector<Layout> out = {unet_layout(p.unet), vae_layout(p.vae)};
  switch (p.family) {
    case Family::SD1:
      out.push_back(openai_clip_layout(p.text_encoder_file, file_prefix::kSd1Clip));
      break;
    case Family::SD2:
      out.push_back(open_clip_layout(p.text_encoder_file, file_prefix::kSd2OpenClip));
      break;
    case Family::SDXL:
      out.push_back(openai_clip_layout(p.text_encoder_file, file_prefix::kSdxlClip));
      out.push_back(open_clip_layout(p.text_encoder_2, file_prefix::kSdxlOpenClip, "text_encoder_2"));
      break;
  }
  return out;
}

// Merges in merges.txt text (CLIP's vocabulary: 256 byte symbols, the same with "</w>", one per merge, bos, eos).
int64_t merges_vocab_size(const std::string& merges) {
  int64_t n = 0;
  size_t pos = 0;
  bool first = true;
  while (pos < merges.size()) {
    size_t end = merges.find('\n', pos);
    if (end == std::string::npos) end = merges.size();
    std::string line = merges.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!(first && line.rfind("#version", 0) == 0) && !line.empty()) {
      PIG_CHECK(line.find(' ') != std::string::npos, "tokenizer merges: line '", line, "' is not 'left right'");
      ++n;
    }
    first = false;
    pos = end + 1;
  }
  PIG_CHECK(n > 0, "tokenizer merges: no merges");
  return 512 + n + 2;
}

}  // namespace

FamilyPreset init_preset(const InitOptions& options) {
  FamilyPreset p = family_preset(options.family);
  PIG_CHECK(options.tokenizer_merges.empty() || p.self_describing, "init: --merges is for pigment's own families (",
            p.name, " uses the CLIP vocabulary)");
  if (!options.tokenizer_merges.empty()) {
    const int64_t v = merges_vocab_size(options.tokenizer_merges);
    p.text_encoder["vocab_size"] = v;
    p.text_encoder["bos_token_id"] = v - 2;
    p.text_encoder["eos_token_id"] = 2;  // pool at argmax(ids) (the eos, the largest id), as SD1's config
    p.text_encoder_file = p.text_encoder;
  }
  return p;
}

std::vector<Layout> preset_single_file_layouts(const std::string& family) {
  return single_file_layouts(family_preset(family));
}

InitReport write_random_tensors(const std::string& path, const std::vector<Layout>& layouts, const InitOptions& options,
                                bool diffusers_names, const std::map<std::string, std::string>& metadata) {
  check_dtype(options.dtype);
  InitReport report;
  std::vector<FileTensor> all;
  for (const Layout& l : layouts) {
    if (l.empty()) continue;
    auto part = file_tensors(l, options.seed, diffusers_names);
    auto& r = report.components[l.front().component];
    for (const auto& t : part) {
      ++r.tensors;
      r.parameters += shape_numel(t.shape);
      report.bytes += uint64_t(shape_numel(t.shape)) * dtype_size(options.dtype);
    }
    all.insert(all.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  write_tensors(path, all, options.dtype, metadata);
  return report;
}

InitReport write_random_single_file(const std::string& path, const InitOptions& options) {
  const FamilyPreset p = init_preset(options);
  std::string vpred = p.prediction_type == "v_prediction" ? "v" : "epsilon";
  std::map<std::string, std::string> meta = {
      {"modelspec.sai_model_spec", "1.0.0"},
      {"modelspec.architecture", p.modelspec_architecture},
      {"modelspec.prediction_type", vpred},
      {"modelspec.title", "pigment random init (" + p.name + ", seed " + std::to_string(options.seed) + ")"},
      {"pigment.init", "family=" + p.name + " seed=" + std::to_string(options.seed) + " dtype=" +
                           std::string(dtype_name(options.dtype))}};
  if (p.self_describing) {
    meta[kMetaFamily] = p.name;
    meta[std::string(kMetaConfigPrefix) + "unet"] = p.unet.dump();
    meta[std::string(kMetaConfigPrefix) + "vae"] = p.vae.dump();
    meta[std::string(kMetaConfigPrefix) + "text_encoder"] = p.text_encoder.dump();
    meta[std::string(kMetaConfigPrefix) + "scheduler"] = p.scheduler.dump();
    if (!options.tokenizer_merges.empty()) meta[kMetaTokenizerMerges] = options.tokenizer_merges;
  }
  return write_random_tensors(path, single_file_layouts(p), options, false, meta);
}

InitReport write_random_diffusers(const std::string& dir, const InitOptions& options) {
  check_dtype(options.dtype);
  const FamilyPreset& p = family_preset(options.family);
  fs::path root(dir);
  std::error_code ec;
  fs::create_directories(root, ec);
  PIG_CHECK(!ec && fs::is_directory(root), dir, ": cannot create folder: ", ec.message());
  struct Part {
    const char* name;
    const json* config;
    const char* file;
    const char* library;
  };
  std::vector<Part> parts = {{"unet", &p.unet, "diffusion_pytorch_model.safetensors", "diffusers"},
                             {"vae", &p.vae, "diffusion_pytorch_model.safetensors", "diffusers"},
                             {"text_encoder", &p.text_encoder, "model.safetensors", "transformers"}};
  if (!p.text_encoder_2.is_null())
    parts.push_back({"text_encoder_2", &p.text_encoder_2, "model.safetensors", "transformers"});
  json index = {{"_class_name", p.pipeline_class}, {"_diffusers_version", "0.25.1"}};
  InitReport report;
  for (const auto& part : parts) {
    std::string name = part.name;
    Layout l = name == "unet"  ? unet_layout(*part.config, "", name)
               : name == "vae" ? vae_layout(*part.config, "", name)
                               : openai_clip_layout(*part.config, "", name);
    fs::create_directories(root / name, ec);
    PIG_CHECK(!ec, (root / name).string(), ": cannot create folder: ", ec.message());
    json config = *part.config;
    if (std::string(part.library) == "transformers") config["torch_dtype"] = torch_dtype(options.dtype);
    write_json(root / name / "config.json", config);
    InitReport r = write_random_tensors((root / name / part.file).string(), {l}, options, true, {{"format", "pt"}});
    report.components[name] = r.components[name];
    report.bytes += r.bytes;
    std::string cls = config.contains("_class_name") ? config["_class_name"].get<std::string>()
                                                     : config["architectures"][0].get<std::string>();
    index[name] = {part.library, cls};
  }
  fs::create_directories(root / "scheduler", ec);
  PIG_CHECK(!ec, (root / "scheduler").string(), ": cannot create folder: ", ec.message());
  write_json(root / "scheduler" / "scheduler_config.json", p.scheduler);
  index["scheduler"] = {"diffusers", p.scheduler["_class_name"]};
  // The tokenizer folders come from the text layer (pipelines/diffusers_folder.h, which pigment init calls next and
  // which names them here); a folder without them still loads in pigment, on its built-in CLIP table.
  index["tokenizer"] = {nullptr, nullptr};
  if (!p.text_encoder_2.is_null()) {
    index["tokenizer_2"] = {nullptr, nullptr};
    index["force_zeros_for_empty_prompt"] = true;
  } else {
    index["safety_checker"] = {nullptr, nullptr};
    index["feature_extractor"] = {nullptr, nullptr};
    index["requires_safety_checker"] = false;
  }
  write_json(root / "model_index.json", index);
  return report;
}

}  // namespace pigment
