#include "training/recipe_emoji.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/text_file.h"
#include "models/random_init.h"
#include "text/bpe_trainer.h"
#include "training/emoji_dataset.h"

namespace pigment::training {

namespace {

namespace fs = std::filesystem;

// Writes `text` to `path` through a temporary file and a rename, so a stage's result exists whole or not at all.
void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f << text;
    PIG_CHECK(f.good(), "cannot write ", tmp.string());
  }
  fs::rename(tmp, path);
}

}  // namespace

EmojiRecipeReport run_emoji_recipe(const EmojiRecipeOptions& o, const std::function<void(const std::string&)>& log,
                                   const std::function<void(const std::string& stage, const StepReport&)>& on_step) {
  PIG_CHECK(o.merges >= 1 && o.merges <= kMaxClipMerges, "--recipe emoji: merges must be in [1, ", kMaxClipMerges,
            "], got ", o.merges);
  const fs::path work(o.work_dir);
  std::error_code ec;
  fs::create_directories(work, ec);
  PIG_CHECK(fs::is_directory(work), "--recipe: cannot create the folder ", work.string());
  const std::string output = o.output.empty() ? (work / "pigment-emoji.safetensors").string() : o.output;
  EmojiRecipeReport report;

  const fs::path data = work / "data";
  if (!fs::exists(data / "metadata.jsonl")) {
    log("data: rendering the emoji into " + data.string());
    EmojiDatasetOptions d;
    d.limit = o.dataset_limit;
    EmojiDatasetReport r = write_emoji_dataset(data.string(), d);
    log("data: " + std::to_string(r.written) + " emoji (" + std::to_string(r.heldout) + " held out)");
  } else {
    log("data: " + data.string() + " exists");
  }

  const fs::path merges = work / "merges.txt";
  if (!fs::exists(merges)) {
    BpeTrainStats st;
    std::string m = train_clip_bpe(read_caption_folder((data / "train").string()), o.merges, 2, &st);
    write_atomically(merges, m);
    log("tokenizer: " + std::to_string(st.merges) + " merges from " + std::to_string(st.texts) + " captions -> " +
        merges.string());
  } else {
    log("tokenizer: " + merges.string() + " exists");
  }

  const fs::path init = work / "init.safetensors";
  if (!fs::exists(init)) {
    InitOptions io;
    io.family = "pigment-emoji";
    io.dtype = DType::F32;
    io.seed = o.seed;
    io.tokenizer_merges = read_text_file(merges.string(), "the recipe's merges");
    const fs::path tmp = work / "init.tmp.safetensors";
    write_random_single_file(tmp.string(), io);
    fs::rename(tmp, init);
    log("init: " + init.string());
  }

  auto stage = [&](const std::string& name, TrainOptions t) -> bool {
    if (fs::exists(t.output)) {
      log(name + ": " + t.output + " exists");
      return true;
    }
    t.run_dir = (work / (name + ".run")).string();
    t.resume = fs::exists(fs::path(t.run_dir) / "checkpoint" / "state.json") ||
               fs::exists(fs::path(t.run_dir) / "checkpoint.old" / "state.json");
    t.data_dir = (data / "train").string();
    t.data.caption_per_line = true;
    t.data.resolution = 64;
    t.data.buckets = false;
    t.seed = o.seed;
    t.save_every = o.save_every;
    t.stop = o.stop;
    t.lr_scheduler = "constant_with_warmup";
    log(name + (t.resume ? ": resuming from " : ": training, checkpoints in ") + t.run_dir);
    TrainSummary s = train(t, [&](const StepReport& r) { on_step(name, r); });
    if (s.stopped) return false;
    log(name + ": wrote " + t.output);
    return true;
  };

  TrainOptions vae;
  vae.method = "vae";
  vae.model.model = init.string();
  vae.output = (work / "vae.safetensors").string();
  vae.batch_size = o.vae_batch;
  vae.max_steps = o.vae_steps;
  vae.learning_rate = o.vae_lr;
  vae.lr_warmup_steps = std::min<int64_t>(100, o.vae_steps / 10);
  vae.save_precision = DType::F32;
  if (!stage("vae", vae)) {
    report.stopped = true;
    return report;
  }

  std::string unet_base = vae.output;
  if (o.text_steps > 0) {
    TrainOptions text;
    text.method = "text-encoder";
    text.model.model = vae.output;
    text.output = (work / "text.safetensors").string();
    text.batch_size = o.text_batch;
    text.max_steps = o.text_steps;
    text.learning_rate = o.text_lr;
    text.lr_warmup_steps = std::min<int64_t>(100, o.text_steps / 10);
    text.save_precision = DType::F32;
    if (!stage("text", text)) {
      report.stopped = true;
      return report;
    }
    unet_base = text.output;
  }

  TrainOptions unet;
  unet.method = "full";
  unet.train_text_encoder = o.te_lr > 0;
  unet.text_encoder_lr = o.te_lr;
  unet.sample_every = o.sample_every;
  unet.sample_prompts = {"red apple", "grinning face", "flag: Japan", "红苹果", "dog face", "smiling face with sunglasses"};
  unet.model.model = unet_base;
  unet.output = output;
  unet.batch_size = o.unet_batch;
  unet.max_steps = o.unet_steps;
  unet.learning_rate = o.unet_lr;
  unet.lr_warmup_steps = std::min<int64_t>(200, o.unet_steps / 10);
  unet.caption_dropout = 0.1f;
  unet.data.caption_line_weights = o.unet_caption_line_weights;
  unet.min_snr_gamma = 5;
  unet.use_ema = true;
  unet.ema_decay = 0.999;
  unet.save_precision = DType::F16;
  if (!stage("unet", unet)) {
    report.stopped = true;
    return report;
  }
  report.output = output;
  return report;
}

}  // namespace pigment::training
