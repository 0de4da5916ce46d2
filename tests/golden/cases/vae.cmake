# The VAE (diffusers AutoencoderKL): encoder, posterior, sample, decoder and intermediates.
list(APPEND PIGMENT_GOLDEN_CASES vae/autoencoder_kl)
