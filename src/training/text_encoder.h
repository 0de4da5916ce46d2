// The text-encoder method's objective (text_encoder.cc): CLIP's symmetric contrastive loss between captions and
// pictures, exposed for its gradient test.
#pragma once
#include "core/tensor.h"

namespace pigment::training {

// context [B, T, H]: the text encoder's conditioning, pooled by the mean over T; images [B, H]: the image tower's
// vectors. loss = ½ (CE(S, diag) + CE(Sᵀ, diag)) with S_ij = scale · cos(pooled_i, image_j), averaged over the
// batch. Writes d loss / d context and d loss / d images, each times `grad_scale`, into dcontext and dimages (made
// here, float32, the inputs' shapes).
double contrastive_loss(const Tensor& context, const Tensor& images, double scale, double grad_scale,
                        Tensor* dcontext, Tensor* dimages);

}  // namespace pigment::training
