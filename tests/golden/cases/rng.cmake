list(APPEND PIGMENT_GOLDEN_CASES
  rng/torch_cpu_generator
  rng/torch_cpu_sequential
  rng/torch_cuda_generator
  rng/torch_cuda_sequential
  rng/diffusers_randn_tensor)
