// Matrix products whose bits never depend on the thread count, for the backward passes. A weight gradient sums over
// every row of a batch (K in the thousands, M·N often small), the shape where oneDNN may cut K across threads and add
// the pieces, so that the rounding would change with the thread count. Here each piece of work is a whole product
// (or a fixed tile of one) computed by a oneDNN matmul made for one thread: the result depends only on the shapes.
#pragma once
#include <cstdint>
#include <memory>

namespace pigment::ops {

// One product c[M, N] (+)= a[M, K] · b[K, N] run by the calling thread alone: inside a parallel region each task
// runs its own. a and b are float32 matrices given by strides (element (r, c) at p[r·row + c·col]), so transposed
// views need no copy; c is row-major with row stride ldc. Made once per shape (outside any parallel region is
// cheapest; the primitive is cached), run any number of times from any thread. M, N, K may be 0.
// bf16: a and b hold bfloat16 (uint16_t) elements, products accumulate in float32 into the float32 c.
class SerialProduct {
 public:
  SerialProduct(int64_t M, int64_t N, int64_t K, int64_t a_row, int64_t a_col, int64_t b_row, int64_t b_col,
                int64_t ldc, bool accumulate, bool bf16 = false);
  void run(const void* a, const void* b, float* c) const;
  // oneDNN's implementation name ("brg:avx512_core_bf16", ...); "" when there is no primitive (an empty shape).
  const char* impl() const;

  struct Impl;

 private:
  int64_t M_, N_, K_, ldc_;
  bool accumulate_;
  std::shared_ptr<Impl> impl_;
};

// A float32 matrix in memory: element (r, c) of batch item i at data[i·batch + r·row + c·col].
struct StridedMatrix {
  const float* data;
  int64_t row, col, batch = 0;
};
// c_i[M, N] = a_i[M, K] · b_i[K, N] for each batch item i, c_i at c + i·c_batch (row-major, row stride ldc); or,
// with c_batch 0, c = Σ_i a_i · b_i (the items added in order). With accumulate, the result is added to c. The
// results are cut into fixed tiles computed in parallel, each by SerialProduct over the whole of K.
void tiled_product(int64_t batch, int64_t M, int64_t N, int64_t K, StridedMatrix a, StridedMatrix b, float* c,
                   int64_t ldc, int64_t c_batch, bool accumulate = false);

// The same with bfloat16 a and b (float32 accumulation and c), for Precision::Fast's backward products
// (ops/fast_backward.cc). `accept` sees oneDNN's implementation name of each tile product before anything runs; when
// it refuses one, nothing is computed and false is returned (the caller then runs its float32 path).
struct StridedBf16 {
  const uint16_t* data;
  int64_t row, col, batch = 0;
};
bool tiled_product_bf16(int64_t batch, int64_t M, int64_t N, int64_t K, StridedBf16 a, StridedBf16 b, float* c,
                        int64_t ldc, int64_t c_batch, bool (*accept)(const char* impl), bool accumulate = false);

}  // namespace pigment::ops
