// Backward of the table lookup: the gradient of the table is dense [vocab, D]; row r is the sum of dy over the
// positions that hold id r, in position order, in double. ref:: walks the rows one by one. Fast: the positions are
// grouped by id once, then the present rows are summed in parallel (one thread per row: no atomics, and the same
// order, hence the same bits, as the reference) while the absent rows are zeroed in parallel.
#include <algorithm>
#include <cstring>
#include <string>

#include "ops/backward.h"
#include "ops/profile.h"

namespace pigment::ops {

namespace {
int64_t check_embedding_grad(const Tensor& dy, const std::vector<int64_t>& ids, int64_t vocab) {
  PIG_CHECK(dy.ndim() >= 1, "embedding_backward: gradient must be [positions, D], got ", shape_str(dy.shape()));
  const int64_t D = dy.dim(-1);
  PIG_CHECK(dy.numel() == int64_t(ids.size()) * D, "embedding_backward: gradient ", shape_str(dy.shape()), " for ",
            ids.size(), " ids");
  PIG_CHECK(vocab >= 0, "embedding_backward: negative vocabulary size ", vocab);
  for (int64_t id : ids)
    PIG_CHECK(id >= 0 && id < vocab, "embedding_backward: id ", id, " outside the table of ", vocab, " rows");
  return D;
}

// Sums the rows of dy listed in `positions` (in that order) into out [D], in double.
void sum_rows(const float* dy, int64_t D, const int64_t* positions, int64_t count, float* out, double* acc) {
  for (int64_t j = 0; j < D; ++j) acc[j] = 0;
  for (int64_t p = 0; p < count; ++p) {
    const float* src = dy + positions[p] * D;
    for (int64_t j = 0; j < D; ++j) acc[j] += src[j];
  }
  for (int64_t j = 0; j < D; ++j) out[j] = float(acc[j]);
}
}  // namespace

namespace ref {
Tensor embedding_backward(const Tensor& dy, const std::vector<int64_t>& ids, int64_t vocab) {
  const int64_t D = check_embedding_grad(dy, ids, vocab);
  Tensor gf = dy.as_f32();
  Tensor dt = Tensor::zeros({vocab, D});
  std::vector<double> acc(static_cast<size_t>(D));
  std::vector<int64_t> positions;
  std::vector<bool> done(size_t(vocab), false);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (done[size_t(ids[i])]) continue;
    done[size_t(ids[i])] = true;
    positions.clear();
    for (size_t p = i; p < ids.size(); ++p)
      if (ids[p] == ids[i]) positions.push_back(int64_t(p));
    sum_rows(gf.f32(), D, positions.data(), int64_t(positions.size()), dt.f32() + ids[i] * D, acc.data());
  }
  return dt;
}
}  // namespace ref

Tensor embedding_backward(const Tensor& dy, const std::vector<int64_t>& ids, int64_t vocab) {
  profile::Scope prof([] { return std::string("embedding_backward"); });
  const int64_t D = check_embedding_grad(dy, ids, vocab);
  Tensor gf = dy.as_f32();
  Tensor dt = Tensor::empty({vocab, D});
  // Positions grouped by id (a counting sort: stable, so each group is in position order).
  std::vector<int64_t> start(size_t(vocab) + 1, 0), positions(ids.size());
  for (int64_t id : ids) ++start[size_t(id) + 1];
  for (int64_t r = 0; r < vocab; ++r) start[size_t(r) + 1] += start[size_t(r)];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (size_t p = 0; p < ids.size(); ++p) positions[size_t(fill[size_t(ids[p])]++)] = int64_t(p);
  }
  const float* G = gf.f32();
  float* T = dt.f32();
  // Rows in blocks of fixed size, so that zeroing the table (usually most of the work) is spread over threads too.
  constexpr int64_t kRows = 64;
  const int64_t blocks = (vocab + kRows - 1) / kRows;
#pragma omp parallel if (dt.numel() > 65536)
  {
    std::vector<double> acc(static_cast<size_t>(D));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t r = b * kRows; r < std::min(vocab, (b + 1) * kRows); ++r) {
        const int64_t count = start[size_t(r) + 1] - start[size_t(r)];
        if (count == 0)
          std::memset(T + r * D, 0, size_t(D) * sizeof(float));
        else
          sum_rows(G, D, positions.data() + start[size_t(r)], count, T + r * D, acc.data());
      }
  }
  return dt;
}

}  // namespace pigment::ops
