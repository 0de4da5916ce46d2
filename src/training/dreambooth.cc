// DreamBooth (--method dreambooth): full fine-tuning of the UNet (and with --train-text-encoder the text encoder) on a
// few images of one subject, all trained with one prompt holding an identifier ("a photo of sks dog"), as diffusers'
// train_dreambooth.py does. With --class-prompt, prior preservation: before training, the base model draws class
// images ("a photo of a dog") into the class folder until it holds --num-class-images (pigment's own pipeline, Euler
// a, a seed per image); existing images are reused, so a resumed run or a second run never draws them again. Each
// step's batch then holds the training images and as many class images, and the loss is
// instance + --prior-loss-weight · prior (trainer.cc).
//
// The result is a whole single-file checkpoint in the original layout (as --method full), and with --save-as-lora
// also the difference to the base model as a kohya LoRA (lora_extract.h, rank --network-dim, 3x3 rank --conv-dim),
// written beside it as NAME-lora.safetensors.
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "io/image.h"
#include "pipelines/infotext.h"
#include "pipelines/stable_diffusion.h"
#include "training/full.h"
#include "training/lora_extract.h"
#include "training/trainer.h"

namespace pigment::training {

namespace {

namespace fs = std::filesystem;

bool is_image(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp";
}

// Draws class images with the base model until `dir` holds `count` images; returns how many it drew.
int make_class_images(const StableDiffusion& model, const TrainOptions& o, const fs::path& dir, int count) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  PIG_CHECK(fs::is_directory(dir), "--class-data-dir: cannot create the folder ", dir.string());
  std::set<std::string> names;
  int have = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    names.insert(e.path().filename().string());
    if (e.is_regular_file() && is_image(e.path())) ++have;
  }
  const int missing = std::max(0, count - have);
  if (missing == 0) {
    std::fprintf(stderr, "class images: %d in %s (reused)\n", have, dir.string().c_str());
    return 0;
  }
  std::fprintf(stderr, "class images: drawing %d with the base model into %s (%d there)\n", missing,
               dir.string().c_str(), have);
  int index = 0;
  for (int made = 0; made < missing; ++index) {
    char name[48];
    std::snprintf(name, sizeof name, "class-%06d.png", index);
    if (names.count(name)) continue;
    GenerateRequest r;
    r.prompt = o.dreambooth.class_prompt;
    r.width = r.height = o.data.resolution;
    r.steps = o.dreambooth.class_image_steps;
    r.cfg_scale = o.dreambooth.class_image_cfg;
    r.sampler = "Euler a";
    r.seed = o.seed + uint64_t(index);
    const GenerateResult g = model.generate(r);
    Infotext info;
    info.prompt = r.prompt;
    info.set("Steps", std::to_string(r.steps));
    info.set("Sampler", r.sampler);
    info.set("CFG scale", format_number(r.cfg_scale));
    info.set("Seed", std::to_string(r.seed));
    info.set("Size", std::to_string(r.width) + "x" + std::to_string(r.height));
    // Written under another name and renamed: an interrupted run leaves no half image that would count.
    const fs::path tmp = dir / (std::string(".") + name + ".tmp"), dst = dir / name;
    write_png(tmp.string(), g.image, {{"parameters", format_infotext(info)}});
    fs::rename(tmp, dst);
    ++made;
    std::fprintf(stderr, "class images: %d/%d\n", made, missing);
  }
  return missing;
}

class DreamBoothMethod : public FullMethod {
 public:
  DreamBoothMethod(const StableDiffusion& model, const TrainOptions& o)
      : FullMethod(model, o), options_(o.dreambooth), lora_(o.lora), save_dtype_(o.save_precision) {
    const TrainOptions::DreamBooth& d = o.dreambooth;
    for (const char* c : {"unet", "text_encoder"}) base_[c] = model.base_component(c);
    if (d.class_prompt.empty()) return;
    PIG_CHECK(d.num_class_images >= 1, "--num-class-images must be positive, got ", d.num_class_images);
    PIG_CHECK(d.class_image_steps >= 1, "--class-image-steps must be positive, got ", d.class_image_steps);
    PIG_CHECK(std::isfinite(d.prior_loss_weight) && d.prior_loss_weight >= 0, "--prior-loss-weight must be >= 0, got ",
              d.prior_loss_weight);
    class_dir_ = d.class_data_dir.empty() ? (fs::path(run_dir_of(o)) / "class_images").string() : d.class_data_dir;
    make_class_images(model, o, class_dir_, d.num_class_images);
  }

  std::string instance_prompt() const override { return options_.instance_prompt; }

  std::optional<PriorData> prior_data() const override {
    if (options_.class_prompt.empty()) return std::nullopt;
    return PriorData{class_dir_, options_.class_prompt, options_.prior_loss_weight};
  }

  void save(const std::string& path, const std::map<std::string, std::string>& metadata) const override {
    std::map<std::string, std::string> meta = metadata;
    if (!options_.instance_prompt.empty()) meta["ss_instance_prompt"] = options_.instance_prompt;
    if (!options_.class_prompt.empty()) meta["ss_class_prompt"] = options_.class_prompt;
    FullMethod::save(path, meta);
    if (!options_.save_as_lora) return;
    LoraExtractOptions eo;
    eo.rank = lora_.rank;
    eo.conv_rank = lora_.conv_rank;
    eo.save_dtype = save_dtype_;
    std::map<std::string, const TensorMap*> base, tuned;
    for (const auto& [name, c] : base_) {
      base[name] = c.tensors.get();
      tuned[name] = components_.at(name).tensors.get();
    }
    ExtractedLora lora = extract_lora(base, tuned, eo);
    for (const auto& [k, v] : meta)
      if (!lora.metadata.count(k) && k.rfind("ss_", 0) == 0) lora.metadata[k] = v;
    lora.metadata["ss_v2"] = family_ == Family::SD2 ? "True" : "False";
    const std::string out = lora_path(path);
    write_extracted_lora(out, lora);
    std::fprintf(stderr, "wrote %s: the difference as a LoRA of rank %d (%d UNet, %d text-encoder modules)\n",
                 out.c_str(), eo.rank, lora.unet_modules, lora.text_encoder_modules);
  }

  // OUTPUT.safetensors → OUTPUT-lora.safetensors
  static std::string lora_path(const std::string& output) {
    fs::path p(output);
    return (p.parent_path() / (p.stem().string() + "-lora.safetensors")).string();
  }

 private:
  TrainOptions::DreamBooth options_;
  LoraOptions lora_;
  DType save_dtype_;
  std::string class_dir_;
  std::map<std::string, ModelComponent> base_;
};

}  // namespace

std::unique_ptr<Method> make_dreambooth_method(const StableDiffusion& model, const TrainOptions& o) {
  return std::make_unique<DreamBoothMethod>(model, o);
}

}  // namespace pigment::training
