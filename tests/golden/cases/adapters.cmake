list(APPEND PIGMENT_GOLDEN_CASES ti/textual_inversion hypernetwork/a1111 controlnet/pipeline)
