// Thread-count-independent products (tiled_product.h): oneDNN matmuls made and run for one thread.
#include "ops/tiled_product.h"

#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/threading.h"
#include "ops/onednn.h"

namespace pigment::ops {

namespace {
using dnnl::memory;
constexpr auto f32 = memory::data_type::f32;
constexpr auto bf16 = memory::data_type::bf16;
}  // namespace

struct SerialProduct::Impl {
  memory::desc a_md, b_md, c_md;
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
};

SerialProduct::SerialProduct(int64_t M, int64_t N, int64_t K, int64_t a_row, int64_t a_col, int64_t b_row,
                             int64_t b_col, int64_t ldc, bool accumulate, bool bf16_inputs)
    : M_(M), N_(N), K_(K), ldc_(ldc), accumulate_(accumulate) {
  if (M == 0 || N == 0 || K == 0) return;  // nothing for oneDNN: run() fills or leaves c
  const std::string key = "serial_matmul|" + std::to_string(M) + "," + std::to_string(N) + "," + std::to_string(K) +
                          "|" + std::to_string(a_row) + "," + std::to_string(a_col) + "|" + std::to_string(b_row) +
                          "," + std::to_string(b_col) + "|" + std::to_string(ldc) + "|" + std::to_string(accumulate) +
                          (bf16_inputs ? "|bf16" : "");
  ScopedNumThreads one(1);  // oneDNN fixes its work split (here: none) when the primitive is made
  impl_ = onednn::cached<Impl>(key, [&] {
    const auto in_type = bf16_inputs ? bf16 : f32;
    const memory::desc a_md({M, K}, in_type, memory::dims{a_row, a_col}),
        b_md({K, N}, in_type, memory::dims{b_row, b_col}), c_md({M, N}, f32, memory::dims{ldc, 1});
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (accumulate) {
      dnnl::post_ops po;
      po.append_sum(1.f);
      attr.set_post_ops(po);
    }
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, onednn::engine());
    return std::make_shared<Impl>(Impl{a_md, b_md, c_md, pd, dnnl::matmul(pd)});
  });
}

const char* SerialProduct::impl() const { return impl_ ? impl_->pd.impl_info_str() : ""; }

void SerialProduct::run(const void* a, const void* b, float* c) const {
  if (M_ == 0 || N_ == 0) return;
  if (K_ == 0) {
    if (!accumulate_)
      for (int64_t m = 0; m < M_; ++m) std::memset(c + m * ldc_, 0, size_t(N_) * sizeof(float));
    return;
  }
  // Outside an active parallel region some oneDNN kernels would look at the thread count again when they run.
  ScopedNumThreads one(1);
  auto& eng = onednn::engine();
  memory am(impl_->a_md, eng, const_cast<void*>(a)), bm(impl_->b_md, eng, const_cast<void*>(b)),
      cm(impl_->c_md, eng, c);
  impl_->prim.execute(onednn::stream(), {{DNNL_ARG_SRC, am},
                                         {DNNL_ARG_WEIGHTS, bm},
                                         {DNNL_ARG_DST, cm},
                                         {DNNL_ARG_SCRATCHPAD, onednn::scratchpad(impl_->pd.scratchpad_desc())}});
  onednn::stream().wait();
}

namespace {
constexpr int64_t kTileM = 64, kTileN = 128;  // fixed: the tiles, and so the bits, depend only on the shapes
}  // namespace

namespace {
// The tiles of tiled_product / tiled_product_bf16 (Matrix: StridedMatrix or StridedBf16). Returns false, computing
// nothing, when `accept` refuses a product's implementation.
template <typename Matrix>
bool tiled(int64_t batch, int64_t M, int64_t N, int64_t K, Matrix a, Matrix b, float* c, int64_t ldc, int64_t c_batch,
           bool accumulate, bool bf16_inputs, bool (*accept)(const char*)) {
  if (M == 0 || N == 0 || batch == 0) return true;
  const bool sum = c_batch == 0;
  if (K == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < (sum ? 1 : batch); ++i)
        for (int64_t m = 0; m < M; ++m) std::memset(c + i * c_batch + m * ldc, 0, size_t(N) * sizeof(float));
    return true;
  }
  const int64_t tm = (M + kTileM - 1) / kTileM, tn = (N + kTileN - 1) / kTileN;
  // The products for the (at most four) tile shapes, first batch item and the ones added to it.
  std::map<std::tuple<int64_t, int64_t, bool>, SerialProduct> prods;
  auto product = [&](int64_t mt, int64_t nt, bool acc) -> const SerialProduct& {
    auto key = std::make_tuple(mt, nt, acc);
    auto it = prods.find(key);
    if (it == prods.end())
      it = prods.emplace(key, SerialProduct(mt, nt, K, a.row, a.col, b.row, b.col, ldc, acc, bf16_inputs)).first;
    return it->second;
  };
  for (int64_t mt : {std::min(kTileM, M), M % kTileM})
    for (int64_t nt : {std::min(kTileN, N), N % kTileN})
      if (mt && nt) {
        if (accept && !accept(product(mt, nt, accumulate).impl())) return false;
        if (sum && batch > 1 && accept && !accept(product(mt, nt, true).impl())) return false;
        product(mt, nt, accumulate);
        if (sum && batch > 1) product(mt, nt, true);
      }
  // Tasks: every tile of every item's result, or every tile of the sum (its items added in order).
  const int64_t tiles = tm * tn, tasks = sum ? tiles : tiles * batch;
  const bool par = tasks > 1 && double(batch) * double(M) * double(N) * double(K) > 1e6;
#pragma omp parallel for schedule(dynamic, 1) if (par)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t tile = t % tiles, item = t / tiles;
    const int64_t m0 = (tile / tn) * kTileM, n0 = (tile % tn) * kTileN;
    const int64_t mt = std::min(kTileM, M - m0), nt = std::min(kTileN, N - n0);
    const SerialProduct& first = prods.at({mt, nt, accumulate});
    const int64_t i0 = sum ? 0 : item, i1 = sum ? batch : item + 1;
    for (int64_t i = i0; i < i1; ++i) {
      const SerialProduct& p = i == i0 ? first : prods.at({mt, nt, true});
      p.run(a.data + i * a.batch + m0 * a.row, b.data + i * b.batch + n0 * b.col, c + i * c_batch + m0 * ldc + n0);
    }
  }
  return true;
}
}  // namespace

void tiled_product(int64_t batch, int64_t M, int64_t N, int64_t K, StridedMatrix a, StridedMatrix b, float* c,
                   int64_t ldc, int64_t c_batch, bool accumulate) {
  tiled(batch, M, N, K, a, b, c, ldc, c_batch, accumulate, false, nullptr);
}

bool tiled_product_bf16(int64_t batch, int64_t M, int64_t N, int64_t K, StridedBf16 a, StridedBf16 b, float* c,
                        int64_t ldc, int64_t c_batch, bool (*accept)(const char* impl), bool accumulate) {
  return tiled(batch, M, N, K, a, b, c, ldc, c_batch, accumulate, true, accept);
}

}  // namespace pigment::ops
