// How a pipeline run spends memory (docs/performance.md has the figures).
// Default: the weights the UNet reuses every step are kept prepared (float32, blocked or Winograd-transformed)
// within the default WeightCache's budget, the others are converted per call into a scratch buffer; the
// checkpoint's pages are handed back after each use (they stay in the page cache, so reading them again costs
// minor page faults only). Between phases (text encoding → sampling → VAE decode) the
// previous phase's kept weights that are cheap to redo are dropped; the tensor pool (core/allocator.h) keeps its
// pages for the next phase, so a process's resident set is its largest phase, and a later image faults in nothing.
// Low-memory: nothing is kept (the weights stream from the mapped file), convolutions are direct (Winograd's transformed weights and work space are 4x and more the
// plain size), the tensor pool keeps no free blocks, and the VAE decodes in tiles.
#pragma once

#include <cstddef>

#include "models/vae.h"
#include "ops/precision.h"

namespace pigment {

// Process-wide: the default and the low-memory settings above. In the default mode the exact path
// (ops::Precision::Fp32), where chosen over a faster default precision, keeps more float32 weights: exact_weight_budget(), and, when that is more than the usual
// 1.25 GiB, they stay kept over the phase boundaries (see memory_phase_boundary), so that the UNet's weights
// prepared for one image serve the next.
void use_default_memory_settings(ops::Precision precision);
void use_low_memory_settings();
// Back to the usual float32 weight budget (1.25 GiB, or $PIGMENT_WEIGHT_CACHE_MB), dropped at each phase boundary:
// for training, whose weights change every step (a kept copy is prepared again after each update) and whose memory
// goes to activations, gradients and optimizer state.
void use_default_weight_budget();
// The float32 weight budget of the exact path in the default mode: a quarter of the machine's memory, at least
// 1.25 GiB and at most 6 GiB (SD1.5's UNet, text encoder and VAE decoder prepared: ≈ 4.3 GB; with all of the UNet
// kept its step runs at ≈ 85 % of the float32 peak against ≈ 70-80 % with 1.25 GiB — docs/performance.md);
// $PIGMENT_WEIGHT_CACHE_MB when set.
size_t exact_weight_budget(size_t physical_memory_bytes);
// Drops kept prepared weights that are cheap to prepare again (unless the settings keep them over phases) and the
// threads' work buffers (into the tensor pool,
// which keeps them for the next phase), and returns malloc's free heap pages to the system.
void memory_phase_boundary();
// The budget of the bf16 weight copies (--precision fast) for sampling and decoding `images` pictures of `pixels`
// each in the default mode: what a peak resident set of 2.45 GB leaves beside the run's working memory, measured on
// SD1.5 with nothing kept (docs/performance.md, "The bf16 budget fitted to the image size"): about 0.45 GB for the
// process, its mapped model pages and the text encoder, plus 0.65 GB per 512x512 picture (the VAE decode's
// activations are the peak). At 512x512 that keeps about 1.35 GB of SD1.5's 1.72 GB UNet, at 256x256 all of it;
// at 1024x1024 nothing. Only applied while no budget was chosen (ops::fast::fit_bf16_weight_budget).
size_t bf16_budget_for(int64_t images, int64_t pixels);
// Applies it (before sampling `images` pictures of `pixels` each).
void fit_bf16_budget_to(int64_t images, int64_t pixels);
// How the VAE decodes in the given mode (tiles of 256 pixels in low-memory mode; untiled otherwise).
VaeTiling decode_tiling(bool low_memory);

}  // namespace pigment
