// A deliberate layer violation for tests/check_layers.sh's own test (ctest layers/violation-is-caught): models/ may
// not include sampling/ (a peer) or pipelines/ (above it).
#pragma once
#include "core/tensor.h"
#include "sampling/rng.h"
#include "pipelines/stable_diffusion.h"
