# Gradients of the VAE, a ControlNet into the frozen UNet and an A1111 hypernetwork through the autograd tape on the
# inference model code (tests/golden/train_adapters.cc).
list(APPEND PIGMENT_GOLDEN_CASES
  train/vae_grad train/controlnet_grad train/hypernetwork_grad)
