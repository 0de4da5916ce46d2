# Every scheduler case runs through tests/golden/schedulers.cc (make_scheduler by diffusers class name).
list(APPEND PIGMENT_GOLDEN_CASES
  schedulers/_schedules
  schedulers/ddim_eta0
  schedulers/ddim_eta1
  schedulers/ddpm
  schedulers/deis
  schedulers/dpm_singlestep
  schedulers/dpmpp_2m
  schedulers/dpmpp_2m_karras
  schedulers/dpmpp_2m_sde
  schedulers/dpmpp_2m_sde_karras
  schedulers/dpmpp_sde
  schedulers/dpmpp_sde_karras
  schedulers/euler
  schedulers/euler_ancestral
  schedulers/euler_karras
  schedulers/heun
  schedulers/kdpm2
  schedulers/kdpm2_ancestral
  schedulers/lcm
  schedulers/lms
  schedulers/pndm_plms
  schedulers/pndm_prk
  schedulers/unipc)
