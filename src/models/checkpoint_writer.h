// Writes a model's components (pigment naming, as LoadedModel::components hold them) back into ONE .safetensors
// file in the original single-file layout of the family (LDM / SGM: model.diffusion_model.*, first_stage_model.*,
// cond_stage_model.* or conditioner.embedders.*), which pigment, A1111, ComfyUI and the original scripts load.
//
// It is the inverse of the layouts in checkpoint_layout.h: Same is written as it is, Reshape back to the file
// shape, Transpose transposed back, and the FusedPart pieces (OpenCLIP q, k, v) are stacked back into one
// in_proj tensor. Tensors are streamed to a temporary file that is renamed into place at the end, so a failure never
// leaves half a file; each is converted to the chosen dtype in chunks through a small reused buffer (fused tensors
// part after part), so writing needs a few MB beyond the components' own memory, whatever the model's size.
//
// SD2 keeps the whole OpenCLIP ViT-H tower in the file, of which diffusers (and pigment) use all but the last
// layer; the loader drops that last layer again. Its tensors come from `extra` when given (the base file's
// unused tensors); otherwise an identity layer is written (zero output projections, unit norms), which no
// consumer of the penultimate layer's output ever reads.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "models/checkpoint_layout.h"
#include "models/model_family.h"
#include "models/model_loader.h"

namespace pigment {

struct SingleFileWriteOptions {
  DType dtype = DType::F16;  // F32, F16 or BF16
  std::map<std::string, std::string> metadata;
  // File tensors written besides the components' (converted to `dtype`), e.g. the parts of a base file that no
  // component holds (SD2's last OpenCLIP layer and text_projection). A key a component writes is not taken from here.
  std::map<std::string, Tensor> extra;
};

struct SingleFileWriteReport {
  int64_t tensors = 0;
  uint64_t bytes = 0;  // data bytes
};

// The layouts a single file of `family` stores `components` with (unet, vae, text_encoder[, text_encoder_2]; absent
// components are left out). For SD2 the text tower has one layer more than the component (see above).
std::vector<Layout> single_file_layouts(Family family, const std::map<std::string, ModelComponent>& components);

// Throws naming the component and tensor when a component lacks a tensor its config implies or has it in another
// shape, and for dtypes other than F32/F16/BF16.
SingleFileWriteReport write_single_file_checkpoint(const std::string& path, Family family,
                                                   const std::map<std::string, ModelComponent>& components,
                                                   const SingleFileWriteOptions& options = {});

// SAI model-spec metadata (modelspec.sai_model_spec, .architecture, .prediction_type, .title) that lets loaders
// (pigment's among them) tell the family and prediction type of the file.
std::map<std::string, std::string> modelspec_metadata(Family family, const std::string& prediction_type,
                                                      const std::string& title);

}  // namespace pigment
