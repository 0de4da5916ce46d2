#include "ops/isa_cap.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "core/cpu_isa.h"
#include "ops/onednn.h"
#include "ops/precision.h"

namespace pigment::ops {
namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// The implementation oneDNN picks for a plain 3x3 convolution (its name ends in the ISA it was generated for).
std::string direct_convolution_kernel() {
  using dnnl::memory;
  const auto f32 = memory::data_type::f32;
  const memory::desc x({1, 64, 32, 32}, f32, memory::format_tag::any), w({64, 64, 3, 3}, f32, memory::format_tag::any),
      y({1, 64, 32, 32}, f32, memory::format_tag::any);
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, x, w, y,
                                    {1, 1}, {1, 1}, {1, 1});
  return dnnl::convolution_forward::primitive_desc(d, onednn::engine()).impl_info_str();
}

// The kernels really run within $PIGMENT_MAX_ISA: pigment's SIMD kernels (Highway's target), oneDNN's ISA and the
// kernels it generates, and the products' AMX path. The forced-AVX2 ctest entries run this with the cap at avx2.
TEST(IsaCap, KernelsRunWithinTheCap) {
  const std::string target = simd_target_name(), dnnl_isa = onednn_isa_name(), conv = direct_convolution_kernel();
  const std::optional<Isa> cap = max_isa();
  std::printf("PIGMENT_MAX_ISA %s: Highway target %s, oneDNN ISA %s, its 3x3 convolution %s\n",
              cap ? isa_name(*cap) : "(none)", target.c_str(), dnnl_isa.c_str(), conv.c_str());
  ASSERT_TRUE(cpu_has(Isa::Avx2)) << "pigment's CI machines all have AVX2";
  if (cpu_has(Isa::Avx512)) {
    EXPECT_TRUE(contains(target, "AVX3")) << target;
    EXPECT_TRUE(contains(dnnl_isa, "avx512_core")) << dnnl_isa;
  } else {  // capped at (or a CPU with) AVX2: no AVX-512 anywhere
    EXPECT_EQ(target, "AVX2");
    EXPECT_EQ(dnnl_isa, "avx2");
    EXPECT_FALSE(contains(conv, "avx512")) << conv;
    EXPECT_TRUE(contains(conv, "avx2")) << conv;
  }
  if (cap && *cap == Isa::Avx512 && cpu_supports(Isa::Avx512)) {
    EXPECT_EQ(target, "AVX3");
    EXPECT_EQ(dnnl_isa, "avx512_core");
  }
  if (!cap && cpu_supports(Isa::Avx512Bf16)) {
    EXPECT_TRUE(contains(dnnl_isa, "bf16") || contains(dnnl_isa, "amx")) << dnnl_isa;
  }
  // Precision::Fast's kernels: AMX where allowed, else AVX-512 BF16 where allowed, else none.
  const FastPath want = cpu_has(Isa::Amx)          ? FastPath::Amx
                        : cpu_has(Isa::Avx512Bf16) ? FastPath::Avx512Bf16
                                                   : FastPath::None;
  EXPECT_EQ(fast_path(), want) << fast_path_name(fast_path());
  EXPECT_EQ(fast_precision_available(), want != FastPath::None);
}

}  // namespace
}  // namespace pigment::ops
