// What oneDNN itself says about banding a 3x3 convolution on this CPU, asked directly (not through the planner in
// conv2d_bands.cc): the tests compare the planner's choice with it, so they hold on any CPU whichever kernel and
// blocking oneDNN picks there (its F(4,3) blocking follows the cache sizes it reads or guesses, and the size).
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ops/onednn.h"

namespace pigment::ops::testing {

// The Winograd primitive descriptor oneDNN gives one image of C x hin x W input rows, padded pt rows above and pb
// below (and one column each side), as conv2d and the bands ask for it (onednn::conv_primitive_desc); none where
// oneDNN has no Winograd kernel for it (every CPU without AVX-512).
inline std::optional<dnnl::convolution_forward::primitive_desc> winograd_desc(int64_t C, int64_t hin, int64_t W,
                                                                              int64_t O, int pt, int pb, bool bias,
                                                                              bool residual, bool* fused) {
  using dnnl::memory;
  const auto f32 = memory::data_type::f32;
  const auto any = memory::format_tag::any;
  const memory::desc x({1, C, hin, W}, f32, any), w({O, C, 3, 3}, f32, any),
      y({1, O, hin + pt + pb - 2, W}, f32, any), b({O}, f32, memory::format_tag::x);
  const auto prop = dnnl::prop_kind::forward_inference;
  const auto alg = dnnl::algorithm::convolution_winograd;
  try {
    auto d = bias ? dnnl::convolution_forward::desc(prop, alg, x, w, b, y, {1, 1}, {pt, 1}, {pb, 1})
                  : dnnl::convolution_forward::desc(prop, alg, x, w, y, {1, 1}, {pt, 1}, {pb, 1});
    return onednn::conv_primitive_desc(d, residual, fused);
  } catch (const dnnl::error&) {
    return std::nullopt;
  }
}

// Whether oneDNN runs bands of `rows` output rows of an H-row image (the first, the middle ones, the last) with the
// kernel, weight layout and residual handling it uses for the whole image: then, and only then, banding keeps the
// whole convolution's bits (the layout fixes how the sums over input channels are split).
inline bool bands_like_whole(int64_t C, int64_t H, int64_t W, int64_t O, int64_t rows, bool bias, bool residual) {
  bool whole_fused = false;
  const auto whole = winograd_desc(C, H, W, O, 1, 1, bias, residual, &whole_fused);
  if (!whole || rows >= H) return false;
  const int64_t bands = (H + rows - 1) / rows, last = H - (bands - 1) * rows;
  struct Band {
    int64_t hin;
    int pt, pb;
  };
  std::vector<Band> kinds{{rows + 1, 1, 0}, {last + 1, 0, 1}};
  if (bands > 2) kinds.push_back({rows + 2, 0, 0});
  for (const Band& k : kinds) {
    bool fused = false;
    const auto band = winograd_desc(C, k.hin, W, O, k.pt, k.pb, bias, residual, &fused);
    if (!band || std::string(band->impl_info_str()) != whole->impl_info_str() ||
        band->weights_desc() != whole->weights_desc() || fused != whole_fused)
      return false;
  }
  return true;
}

// The tallest band height, a multiple of 4 and at most max_rows, that oneDNN treats like the whole image; 0 if none.
inline int64_t tallest_matching_bands(int64_t C, int64_t H, int64_t W, int64_t O, int64_t max_rows, bool bias,
                                      bool residual) {
  for (int64_t rows = max_rows / 4 * 4; rows >= 4; rows -= 4)
    if (bands_like_whole(C, H, W, O, rows, bias, residual)) return rows;
  return 0;
}

}  // namespace pigment::ops::testing
