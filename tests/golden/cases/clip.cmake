# CLIP text encoders (transformers CLIPTextModel / CLIPTextModelWithProjection).
list(APPEND PIGMENT_GOLDEN_CASES clip/clip_sd1 clip/clip_sd2 clip/clip_proj)
