// A LoRA that approximates the difference between two models of one architecture (pigment lora extract, and
// --method dreambooth --save-as-lora), with the semantics of kohya's sd-scripts networks/extract_lora_from_models.py:
//
//   for every layer kohya's LoRA network targets (the UNet's transformer blocks: every linear layer and 1x1
//   convolution; with a conv rank also the resnets' layers and the down/upsamplers' 3x3 convolutions; the text
//   encoder's attention and MLP linears), ΔW = W_tuned − W_base (a 3x3 kernel flattened to [out, in·9]),
//   ΔW = U S Vᵀ (a full SVD, LAPACK dgesdd in double precision), r = min(rank, out, in),
//   up = U[:, :r] · diag(S[:r]), down = Vᵀ[:r, :],
//   both clamped to ±q where q is the clamp_quantile quantile (linear interpolation, torch.quantile) of the
//   values of up and down together (a quantile of 1 means no clamping: kohya's would still clamp the negative
//   values below −max); alpha = r, so the LoRA's scale alpha/r is 1 and up·down ≈ ΔW.
//   The text encoder is left out as a whole when no layer of it differs by more than min_diff (largest absolute
//   element of ΔW), as kohya does ("Text encoder is same. Extract U-Net only."); the UNet's layers are always kept.
//
// The result is a kohya file (lora_unet_… / lora_te_…, .lora_down.weight, .lora_up.weight, .alpha) that pigment's
// LoRA loader and A1111 read.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "models/model_loader.h"
#include "models/weights.h"

namespace pigment::training {

// The thin SVD of a row-major m×n matrix: a = u · diag(s) · vt, u [m, k], vt [k, n], k = min(m, n), s descending.
struct Svd {
  int64_t m = 0, n = 0, k = 0;
  std::vector<double> u, s, vt;
};
Svd svd(const std::vector<double>& a, int64_t m, int64_t n);

// torch.quantile(values, q) with linear interpolation (q in [0, 1]).
double quantile(std::vector<double> values, double q);

struct LowRankPair {
  Tensor up;    // [out, r] (linear) or [out, r, 1, 1] (convolution), float32
  Tensor down;  // [r, in] or [r, in, kh, kw], float32
  int rank = 0;
};
// The rank-`rank` kohya pair of one weight difference (2-D or 4-D).
LowRankPair low_rank_pair(const Tensor& diff, int rank, double clamp_quantile);

struct LoraExtractOptions {
  int rank = 4;             // kohya's --dim
  int conv_rank = 0;        // kohya's --conv_dim for the 3x3 convolutions (0: none, and no resnet layers at all)
  double clamp_quantile = 0.99;
  double min_diff = 0.01;
  DType save_dtype = DType::F32;  // of the up/down tensors (alpha stays float32)
};

struct ExtractedLora {
  std::map<std::string, Tensor> tensors;  // kohya keys
  std::map<std::string, std::string> metadata;
  int unet_modules = 0, text_encoder_modules = 0;
  bool text_encoder_different = false;
  double text_encoder_max_diff = 0;  // the largest |ΔW| over the text encoder's target layers
};

// The layers kohya's LoRA network targets in a component ("unet" or "text_encoder"), as the diffusers /
// transformers module names of `weights` (sorted), each with the rank it gets (0: not targeted).
std::vector<std::pair<std::string, int>> lora_extract_targets(const std::string& component, const TensorMap& weights,
                                                              const LoraExtractOptions& options);

// `base` and `tuned`: component name ("unet", "text_encoder") → weights (any float dtype). Shapes must agree.
ExtractedLora extract_lora(const std::map<std::string, const TensorMap*>& base,
                           const std::map<std::string, const TensorMap*>& tuned, const LoraExtractOptions& options);

// From two loaded models (SD1 / SD2; SDXL is refused by name): the metadata names the family as kohya's does.
ExtractedLora extract_lora(const LoadedModel& base, const LoadedModel& tuned, const LoraExtractOptions& options);

// Writes the file atomically, with kohya's sshs_model_hash.
void write_extracted_lora(const std::string& path, const ExtractedLora& lora);

}  // namespace pigment::training
