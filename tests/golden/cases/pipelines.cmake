list(APPEND PIGMENT_GOLDEN_CASES
  pipelines/sd1_txt2img_ddim_cfg1p0
  pipelines/sd1_txt2img_ddim_cfg7p5
  pipelines/sd1_txt2img_euler_cfg7p5
  pipelines/sd1_txt2img_dpmpp_2m_cfg7p5
  pipelines/sd1_img2img_ddim
  pipelines/sd1_inpaint_ddim
  pipelines/sd2_vpred_ddim
  pipelines/sdxl_euler
)
