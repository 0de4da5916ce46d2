# Training gradients and steps through the autograd tape on the inference model code (tests/golden/train.cc).
list(APPEND PIGMENT_GOLDEN_CASES
  train/unet_eps_step train/unet_vpred_minsnr
  train/lora_grad_up_zero train/lora_grad_up_random
  train/clip_text_grad train/textual_inversion_step)
