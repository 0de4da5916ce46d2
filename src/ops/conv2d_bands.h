// 3x3 convolutions (stride 1, padding 1) computed in horizontal bands of output rows, for large images: each band is
// one oneDNN convolution over just the input rows it needs (padding only above the first band and below the last),
// stored into place in the full output. Memory then follows the band, not the image: the Winograd work space
// (F(4,3): about 2.25x the input plus 2.25x the output, 1.2 GB for a 256-channel 512x512 convolution) and the
// blocked copies of input and output.
//
// Same bits as ops::conv2d: bands start on multiples of 4 rows (the F(4,3) output tile, and twice the F(2,3) one),
// so every output tile reads the same input values and goes through the same arithmetic as in the whole
// convolution. Banding is used only where that holds by construction: the fp32 products, the algorithm conv2d
// would choose being Winograd, and oneDNN picking for the band the same kernel and the same weight layout as for
// the whole image. Otherwise (and when one band would cover the image) the whole convolution runs, through
// ops::conv2d. conv2d_bands_test checks bit-identity.
#pragma once
#include <cstddef>
#include <cstdint>

#include "ops/ops.h"

namespace pigment::ops {

struct BandOptions {
  const Tensor* residual = nullptr;  // y = conv + bias + residual, as Conv2dOptions::residual
  WeightCache* cache = nullptr;      // nullptr: default_weight_cache()
  // Work space plus blocked copies allowed per band (an estimate; bands are at least 4 rows). 0: the process-wide
  // default below; SIZE_MAX: one band, i.e. the whole convolution.
  size_t band_bytes = 0;
};
// The process-wide band size: 64 MiB, or $PIGMENT_CONV_BAND_MB megabytes; 0 (in either): never band. For benchmarks.
void set_default_band_bytes(size_t bytes);
size_t default_band_bytes();

// conv2d(x, w, bias, Conv2dParams::same(1)) [+ residual]; x [N, C, H, W], w [O, C, 3, 3].
Tensor conv3x3_banded(const Tensor& x, const Tensor& w, const Tensor* bias, const BandOptions& options = {});
// conv3x3_banded(upsample_nearest2x(x), ...) without materialising the upsampled image (4x the size of x): each band
// upsamples the rows it reads.
Tensor upsample2x_conv3x3_banded(const Tensor& x, const Tensor& w, const Tensor* bias,
                                 const BandOptions& options = {});

// The output rows per band conv3x3_banded would use for this shape (a multiple of 4), or 0 when it would run the
// whole convolution instead. For tests and benchmarks.
int64_t conv3x3_band_rows(const Tensor& x, const Tensor& w, const Tensor* bias, const BandOptions& options = {},
                          bool upsampled = false);

}  // namespace pigment::ops
