# Optimizer steps (tests/golden/train_optim.cc): torch.optim.AdamW, with and without clip_grad_norm_.
list(APPEND PIGMENT_GOLDEN_CASES train/adamw_step train/adamw_clipnorm_step)
