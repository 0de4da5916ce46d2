list(APPEND PIGMENT_GOLDEN_CASES unet/unet_sd1 unet/unet_sd2 unet/unet_sdxl unet/unet_inpaint)
