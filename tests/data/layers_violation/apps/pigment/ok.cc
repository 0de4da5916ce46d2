// Allowed: apps may use every layer.
#include "pipelines/stable_diffusion.h"
