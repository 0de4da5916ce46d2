# Single files in the original LDM / SGM layouts, loaded through the one layout table (models/checkpoint_layout).
list(APPEND PIGMENT_GOLDEN_CASES singlefile/sd1 singlefile/sdxl)
