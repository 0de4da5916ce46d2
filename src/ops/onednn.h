// oneDNN plumbing shared by the products and convolutions: the CPU engine, a stream per thread, a bounded cache of
// primitives keyed by shape (and thread count, since oneDNN fixes its work split when a primitive is created), and
// prepared (converted + reordered) weights kept in a WeightCache.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

#include <functional>
#include <memory>
#include <string>

#include "ops/ops.h"

namespace pigment::ops::onednn {

dnnl::engine& engine();
dnnl::stream& stream();

// The object stored under `key`, made by `make` on a miss. Keys should name the primitive kind and every parameter
// that shapes it; the current thread count is appended here. Least recently used entries beyond 512 are dropped.
std::shared_ptr<void> cached_primitive(const std::string& key, const std::function<std::shared_ptr<void>()>& make);
template <typename T>
std::shared_ptr<T> cached(const std::string& key, const std::function<std::shared_ptr<T>()>& make) {
  return std::static_pointer_cast<T>(cached_primitive(key, [&] { return std::shared_ptr<void>(make()); }));
}
size_t cached_primitive_count();

// A weight ready for a primitive: its memory, and what keeps that memory valid until the primitive has run (a
// cached entry, or a per-thread scratch buffer that the next preparation may reuse once `hold` is released).
struct PreparedWeight {
  dnnl::memory mem;
  std::shared_ptr<void> hold;
};

// `w` converted to float32 and laid out as `want`; `plain` describes w's own logical layout (dims as the primitive
// sees them, strides of w's row-major memory). Taken from / added to `cache` (nullptr: default_weight_cache()), or
// converted into scratch for this call only (see WeightCache in ops.h). Keep the result alive until the primitive
// has run.
PreparedWeight prepared(WeightCache* cache, const Tensor& w, const dnnl::memory::desc& plain,
                        const dnnl::memory::desc& want);

// What a cached prepared form of a weight was made from (WeightCache, the bf16 copies of Precision::Fast, the int8
// copies of Precision::Int8 all key their entries by the weight's data pointer and this).
struct PreparedKey {
  std::weak_ptr<const void> owner;
  Shape shape;
  DType dtype;
  uint64_t fingerprint;
  dnnl::memory::desc layout;
  // w's memory no longer holds what this was made from: its owner is freed, another owner's memory is at the same
  // address, or w was rewritten in place (same shape and dtype, another fingerprint — `fp` is w's).
  bool stale_for(const Tensor& w, uint64_t fp) const;
  // Made from w's memory (same owner, shape and dtype) into the layout `want`.
  bool serves(const Tensor& w, const dnnl::memory::desc& want) const;
};
bool same_owner(const std::weak_ptr<const void>& a, const std::shared_ptr<const void>& b);

// A matmul primitive for `d` under `attr`, or null where oneDNN has none or its implementation's name fails `accept`
// (the fast paths take only the kernels with their instructions).
struct Matmul {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
};
std::shared_ptr<Matmul> make_matmul(const dnnl::matmul::desc& d, const dnnl::primitive_attr& attr,
                                    const std::function<bool(const char*)>& accept);

// A convolution primitive for `d` under `attr`, or null where oneDNN has none or its implementation's name fails
// `accept` (as make_matmul).
struct Conv {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
};
std::shared_ptr<Conv> make_conv(const dnnl::convolution_forward::desc& d, const dnnl::primitive_attr& attr,
                                const std::function<bool(const char*)>& accept);
// "kind|N,C,H,W,O,kh,kw,stride,pad_top,pad_left,pad_bottom,pad_right,": the shape part of a convolution primitive's
// cache key.
std::string conv_key(const char* kind, int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw,
                     const Conv2dParams& p);

// Before converting w per call: where weight pages are given back after use (release_weight_pages()), maps a
// memory-mapped w's pages in one call (core/file_pages.h populate_file_pages) instead of a fault per few pages;
// elsewhere they stay mapped after the first use and this does nothing (a populate of mapped pages still walks them).
void map_released_pages(const Tensor& w);

// A sample of w's bytes (64 elements spread over it; 0 for memory-mapped file weights, which cannot change): the
// caches' safety net against a weight changed in place without being forgotten. Not a guarantee.
uint64_t weight_fingerprint(const Tensor& w);

// Converts w (f32, f16 or bf16, its memory laid out as `plain` describes) into the float32 blocked layout `want`
// at dst (want.get_size() bytes), in one pass. Returns false, touching nothing, for layouts it does not handle
// (non-blocked formats such as Winograd's, padded offsets, extra flags); oneDNN's reorder does those.
bool convert_to_blocked(const Tensor& w, const dnnl::memory::desc& plain, const dnnl::memory::desc& want, void* dst);
// The same into a bfloat16 blocked layout (rounded to nearest even, NaN kept): the bf16 kernels' weights
// (fast_products.cc). One pass; the VNNI layouts ("...16a2b") of rows in 16s go 16 rows at a time through AVX-512
// transposes, others through a scalar loop with the same bits. vector_only: returns false, touching nothing, where
// the AVX-512 loop does not apply (the caller then rounds to plain bf16 and lets oneDNN's reorder permute).
bool convert_to_blocked_bf16(const Tensor& w, const dnnl::memory::desc& plain, const dnnl::memory::desc& want,
                             void* dst, bool vector_only = false);
// A per-thread buffer of at least `bytes` for a weight converted per call (*out), held until the returned pointer is
// released; a second lease while it is held gets memory of its own. Freed by release_work_memory().
std::shared_ptr<void> weight_scratch(size_t bytes, void** out);
// Whether convert_to_blocked may use its AVX-512 kernels (default on unless $PIGMENT_PORTABLE_WEIGHT_PREP is set;
// they give the portable loops' bits, which tests check by turning them off). Returns whether the CPU has them.
bool set_simd_weight_prep(bool on);

// Scratch memory for one primitive execution (primitives are made with scratchpad_mode::user, so concurrent calls
// from several threads never share one): a per-thread buffer that grows as needed.
dnnl::memory scratchpad(const dnnl::memory::desc& md);

// Converts n elements of a float dtype to float32 (vectorised for f16/bf16).
void to_f32(DType from, const void* src, float* dst, size_t n);

// Appends the eltwise post-op that applies `a` to a product's result (nothing for Activation::None).
void append_activation(dnnl::post_ops& po, Activation a);
// A per-call buffer of layout `md` (blocked activations) in memory from the tensor allocator, which backs large
// blocks with huge pages and reuses freed ones; oneDNN's own allocation maps them afresh on every call, a page fault
// per 4 KiB (half of a 42 ms reorder of a 128x512x512 input). `holder` keeps the block alive.
dnnl::memory work_memory(const dnnl::memory::desc& md, std::shared_ptr<void>& holder);

// ConvAlgorithm::Auto's rule for a 3x3, stride-1, padding-1 convolution (conv2d.cc): whether it runs as Winograd.
bool auto_picks_winograd(int64_t in_channels, int64_t out_channels, int64_t out_pixels);

// The primitive descriptor of a convolution (user scratchpad), with a residual fused as a sum post-op where the kernel
// accepts one (*fused says whether it was; some kernels refuse it and the caller then adds the residual itself).
// Throws dnnl::error where oneDNN has no kernel for `desc`.
dnnl::convolution_forward::primitive_desc conv_primitive_desc(const dnnl::convolution_forward::desc& desc,
                                                              bool residual, bool* fused);

}  // namespace pigment::ops::onednn
