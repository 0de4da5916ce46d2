#include "models/checkpoint_writer.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "core/error.h"
#include "io/safetensors_writer.h"
#include "models/checkpoint_layout.h"
#include "models/model_config.h"

namespace pigment {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// The SD2 text tower as the file holds it: the component's config with the layer diffusers drops.
nlohmann::json with_dropped_layer(const nlohmann::json& config, const std::string& source) {
  nlohmann::json c = config;
  c["num_hidden_layers"] = ModelConfig(config, source + " config").get_int("num_hidden_layers", 12) + 1;
  return c;
}

// A tensor of the identity transformer layer written for SD2's dropped last layer: layer-norm scales 1, the rest 0
// (zero output projections make both residual branches add nothing).
Tensor identity_layer_tensor(const LayoutEntry& e) {
  const bool norm_scale = e.name.size() > 7 && e.name.compare(e.name.size() - 7, 7, ".weight") == 0 &&
                          e.name.find("layer_norm") != std::string::npos;
  return norm_scale ? Tensor::full(e.shape, 1.f) : Tensor::zeros(e.shape);
}

// One tensor of the file and where its data comes from. Nothing is converted or copied until it is written.
struct FileTensor {
  std::string key;
  Shape shape;
  Tensor whole;  // from `extra` (or a Same / Reshape / Transpose source)
  bool transpose = false;  // whole is the component's [in, out] view of a Transpose entry
  std::vector<std::pair<const LayoutEntry*, Tensor>> parts;  // FusedPart pieces, in any order
};

// Writes `t` converted to `dtype` (as Tensor::to converts, element by element, so the bytes are the same) through two
// small scratch buffers that every tensor reuses: saving needs no memory beyond the model's, however large it is.
class ConvertingWriter {
 public:
  explicit ConvertingWriter(SafeTensorsWriter& w) : w_(w) {}
  void write(const Tensor& t, DType dtype) {
    const auto* src = static_cast<const uint8_t*>(t.raw());
    const size_t n = size_t(t.numel()), in_size = dtype_size(t.dtype()), out_size = dtype_size(dtype);
    if (t.dtype() == dtype) {
      w_.write(src, n * in_size);
      return;
    }
    for (size_t i = 0; i < n; i += kChunk) {
      const size_t m = std::min(kChunk, n - i);
      const void* from = src + i * in_size;
      if (dtype == DType::F32) {
        f32_.resize(kChunk);
        convert_to_f32(t.dtype(), from, f32_.data(), m);
        w_.write(f32_.data(), m * out_size);
        continue;
      }
      const float* f = static_cast<const float*>(from);
      if (t.dtype() != DType::F32) {
        f32_.resize(kChunk);
        convert_to_f32(t.dtype(), from, f32_.data(), m);
        f = f32_.data();
      }
      out_.resize(kChunk * out_size);
      convert_from_f32(dtype, f, out_.data(), m);
      w_.write(out_.data(), m * out_size);
    }
  }

 private:
  static constexpr size_t kChunk = size_t(1) << 20;  // elements
  SafeTensorsWriter& w_;
  std::vector<float> f32_;
  std::vector<uint8_t> out_;
};

// Streams the file tensor in `dtype`: a fused tensor part after part (the parts are consecutive row blocks).
void write_file_tensor(ConvertingWriter& w, const FileTensor& f, DType dtype) {
  if (f.whole.defined()) {
    w.write(f.transpose ? transpose2d(f.whole) : f.whole, dtype);  // (a transposed tensor: the one projection)
    return;
  }
  std::vector<std::pair<const LayoutEntry*, Tensor>> parts = f.parts;
  std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.first->part < b.first->part; });
  const int64_t part_numel = shape_numel(f.shape) / int64_t(parts.size());
  for (const auto& [e, t] : parts) {
    PIG_CHECK(t.numel() == part_numel, "fused tensor ", f.key, ": part ", e->full_name(), " has ", t.numel(),
              " values, expected ", part_numel);
    w.write(t, dtype);
  }
}

}  // namespace

std::vector<Layout> single_file_layouts(Family family, const std::map<std::string, ModelComponent>& components) {
  std::vector<Layout> out;
  auto config = [&](const char* name) -> const ModelComponent* {
    auto it = components.find(name);
    return it == components.end() ? nullptr : &it->second;
  };
  if (const ModelComponent* c = config("unet")) out.push_back(unet_layout(c->config, file_prefix::kUNet, "unet"));
  if (const ModelComponent* c = config("vae")) out.push_back(vae_layout(c->config, file_prefix::kVae, "vae"));
  if (const ModelComponent* c = config("text_encoder")) {
    switch (family) {
      case Family::SD1:
        out.push_back(openai_clip_layout(c->config, file_prefix::kSd1Clip, "text_encoder"));
        break;
      case Family::SD2:
        out.push_back(open_clip_layout(with_dropped_layer(c->config, c->source), file_prefix::kSd2OpenClip,
                                       "text_encoder"));
        break;
      case Family::SDXL:
        out.push_back(openai_clip_layout(c->config, file_prefix::kSdxlClip, "text_encoder"));
        break;
    }
  }
  if (const ModelComponent* c = config("text_encoder_2")) {
    PIG_CHECK(family == Family::SDXL, "single file of family ", family_name(family),
              ": only SDXL has a text_encoder_2");
    out.push_back(open_clip_layout(c->config, file_prefix::kSdxlOpenClip, "text_encoder_2"));
  }
  return out;
}

SingleFileWriteReport write_single_file_checkpoint(const std::string& path, Family family,
                                                   const std::map<std::string, ModelComponent>& components,
                                                   const SingleFileWriteOptions& options) {
  PIG_CHECK(options.dtype == DType::F32 || options.dtype == DType::F16 || options.dtype == DType::BF16, path,
            ": a checkpoint is written in f32, f16 or bf16, not ", dtype_name(options.dtype));
  for (const auto& [name, _] : components)
    PIG_CHECK(name == "unet" || name == "vae" || name == "text_encoder" || name == "text_encoder_2", path,
              ": unknown component '", name, "' (unet, vae, text_encoder, text_encoder_2)");
  std::string dropped_layer;  // SD2: names of the text encoder's layer that diffusers drops
  if (family == Family::SD2 && components.count("text_encoder")) {
    const ModelComponent& c = components.at("text_encoder");
    dropped_layer = "text_model.encoder.layers." +
                    std::to_string(ModelConfig(c.config, c.source + " config").get_int("num_hidden_layers", 12)) + ".";
  }

  std::vector<FileTensor> files;
  std::map<std::string, size_t> index;
  const std::vector<Layout> layouts = single_file_layouts(family, components);  // FileTensor::parts point into it
  for (const Layout& layout : layouts) {
    for (const LayoutEntry& e : layout) {
      auto [it, added] = index.emplace(e.file_key, files.size());
      if (added) files.push_back({e.file_key, e.file_shape, Tensor(), false, {}});
      FileTensor& f = files[it->second];
      const ModelComponent& c = components.at(e.component);
      auto src = c.tensors ? c.tensors->find(e.name) : TensorMap::const_iterator();
      const bool found = c.tensors && src != c.tensors->end();
      if (!found) {
        if (auto x = options.extra.find(e.file_key); x != options.extra.end()) {
          PIG_CHECK(x->second.shape() == e.file_shape, path, ": extra tensor '", e.file_key, "' has shape ",
                    shape_str(x->second.shape()), ", expected ", shape_str(e.file_shape));
          f.whole = x->second;
          f.transpose = false;
          f.parts.clear();
          continue;
        }
        PIG_CHECK(e.component == "text_encoder" && !dropped_layer.empty() && starts_with(e.name, dropped_layer),
                  c.source, ": missing tensor '", e.name, "' (", e.component, "), needed for ", e.file_key);
        if (f.whole.defined()) continue;  // this fused tensor already comes from `extra`
        if (e.transform == KeyTransform::FusedPart)
          f.parts.emplace_back(&e, identity_layer_tensor(e));
        else
          f.whole = identity_layer_tensor(e);
        continue;
      }
      const Tensor& t = src->second;
      PIG_CHECK(t.shape() == e.shape, c.source, ": tensor '", e.name, "' has shape ", shape_str(t.shape()),
                ", expected ", shape_str(e.shape), " (", e.file_key, ")");
      switch (e.transform) {
        case KeyTransform::Same:
          f.whole = t;
          break;
        case KeyTransform::Reshape:
          f.whole = t.reshape(e.file_shape);
          break;
        case KeyTransform::Transpose:
          f.whole = t;
          f.transpose = true;
          break;
        case KeyTransform::FusedPart:
          f.parts.emplace_back(&e, t);
          break;
      }
    }
  }
  for (const FileTensor& f : files) {
    if (f.whole.defined()) continue;
    std::set<int> seen;
    for (const auto& [e, _] : f.parts) seen.insert(e->part);
    PIG_CHECK(!f.parts.empty() && int(seen.size()) == f.parts.front().first->parts, path, ": fused tensor '", f.key,
              "' is missing parts");
  }
  for (const auto& [key, t] : options.extra)
    if (!index.count(key)) {
      index.emplace(key, files.size());
      files.push_back({key, t.shape(), t, false, {}});
    }

  std::vector<SafeTensorsWriter::Entry> entries;
  for (const FileTensor& f : files) entries.push_back({f.key, options.dtype, f.shape});
  SafeTensorsWriter w(path, entries, options.metadata);
  ConvertingWriter cw(w);
  for (const FileTensor& f : files) write_file_tensor(cw, f, options.dtype);
  w.finish();
  return {int64_t(files.size()), w.data_bytes()};
}

std::map<std::string, std::string> modelspec_metadata(Family family, const std::string& prediction_type,
                                                      const std::string& title) {
  const std::string pred = normalize_prediction_type(prediction_type);
  return {{"modelspec.sai_model_spec", "1.0.0"},
          {"modelspec.architecture", default_preset(family, pred).modelspec_architecture},
          {"modelspec.prediction_type", pred == "v_prediction" ? "v" : pred},
          {"modelspec.title", title}};
}

}  // namespace pigment
