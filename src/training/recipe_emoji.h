// `pigment train --recipe emoji`: pigment's own model from nothing but Debian's files, in one resumable command.
// Stages, each skipped when its result exists, each training stage resumed from its last checkpoint:
//   1. data      WORK/data          `pigment dataset emoji` (Noto Color Emoji, 64×64, captions in English and Chinese)
//   2. tokenizer WORK/merges.txt     a byte-level BPE learned from the training captions (text/bpe_trainer.h)
//   3. init      WORK/init.safetensors   a random pigment-emoji model whose text encoder is sized to the merges
//   4. vae       WORK/vae.safetensors    the autoencoder (--method vae: L1 + KL), which also fixes the latents'
//                                        scaling factor
//   5. text      WORK/text.safetensors   the text encoder alone (--method text-encoder): CLIP's contrastive loss
//                                        between the captions and a linear map of their pictures' latents, so that
//                                        captions of different pictures give different contexts before the UNet
//                                        trains (0 steps: the text encoder stays random)
//   6. unet      OUTPUT                  the UNet (--method full; the text encoder frozen unless --recipe-te-lr)
//                                        on the VAE's latents, with caption dropout (so CFG works), min-SNR-5, EMA
//                                        and the emoji's names weighted above its other caption lines
// The held-out emoji (WORK/data/heldout) are never trained on.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "training/trainer.h"

namespace pigment::training {

struct EmojiRecipeOptions {
  std::string work_dir = "out/emoji-recipe";
  std::string output;       // the model; "" = WORK/pigment-emoji.safetensors
  int dataset_limit = 0;    // tests: only the first N emoji (0: all)
  int merges = 8000;
  uint64_t seed = 0;
  int64_t vae_steps = 800;
  int vae_batch = 8;
  double vae_lr = 1e-3;
  int64_t text_steps = 600;
  int text_batch = 128;
  double text_lr = 5e-4;
  int64_t unet_steps = 4800;
  int unet_batch = 32;
  double unet_lr = 3e-4;
  // The UNet stage's caption line weights (DatasetOptions::caption_line_weights): an emoji's caption file starts
  // with its English and Chinese names, which the uniform choice among its ~9 lines showed in one step of nine;
  // 5,5,1 shows each name in about three steps of ten (docs/status.md, "pigment's own model").
  std::vector<double> unet_caption_line_weights = {5, 5, 1};
  // The text encoder's learning rate in the UNet stage; 0 keeps it frozen (as the text stage left it). Trained
  // jointly at the UNet's rate from scratch, its outputs collapsed: most captions came out nearly alike and the
  // model ignored them (docs/emoji_quality.md).
  double te_lr = 0;
  int64_t sample_every = 500;  // sample pictures of a few prompts in WORK/unet.run/samples (0: none)
  int64_t save_every = 100;  // checkpoints of both training stages
  const std::atomic<bool>* stop = nullptr;
};

struct EmojiRecipeReport {
  bool stopped = false;  // a stage was stopped by `stop`: run again to continue
  std::string output;    // the model, when every stage is done
};

// Messages (stage starts, skips) go to `log`; every training step to `on_step` with its stage name.
EmojiRecipeReport run_emoji_recipe(const EmojiRecipeOptions& o, const std::function<void(const std::string&)>& log,
                                   const std::function<void(const std::string& stage, const StepReport&)>& on_step);

}  // namespace pigment::training
