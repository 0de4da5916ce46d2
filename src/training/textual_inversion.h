// Textual inversion (--method textual-inversion): a new word whose token-embedding vectors are the only trained
// tensor; the text encoder and UNet stay frozen, the gradient reaches the vectors through both.
#pragma once
#include "training/method.h"
