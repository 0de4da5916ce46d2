list(APPEND PIGMENT_GOLDEN_CASES lora/kohya lora/diffusers ti/textual_inversion hypernetwork/a1111 controlnet/pipeline)
