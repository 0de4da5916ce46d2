// Textual inversion (--method textual-inversion): a new word whose token-embedding vectors are the only trained
// tensors (SDXL: one set per text encoder, clip_l and clip_g); the text encoder(s) and UNet stay frozen, the gradient
// reaches the vectors through both.
#pragma once
#include "training/method.h"
