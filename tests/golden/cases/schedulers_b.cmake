# The DPM-Solver family, UniPC, DEIS and LCM cases (schedulers/dpmpp_2m, dpmpp_2m_karras, dpmpp_2m_sde,
# dpmpp_2m_sde_karras, dpm_singlestep, unipc, deis, lcm) all pass through tests/golden/schedulers.cc and are listed
# once, with every other scheduler case, in schedulers.cmake: a second add_test of the same name would fail.
