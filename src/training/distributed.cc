#include "training/distributed.h"

#define OMPI_SKIP_MPICXX 1  // the C API only (no MPI C++ bindings)
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "core/error.h"

namespace pigment::training::distributed {

namespace fs = std::filesystem;

namespace {

bool g_active = false;
int g_rank = 0, g_size = 1;

// Gradients travel in buckets of this many floats (64 MiB): few, large all-reduces rather than one per tensor.
constexpr size_t kBucketFloats = size_t(16) << 20;

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail("MPI: ", what, " failed: ", std::string(msg, size_t(len)));
}

// Waits for a non-blocking operation: polls at first (short waits stay short), then sleeps between polls so a rank
// that waits long (for rank 0 writing a checkpoint) leaves the CPU to the others.
void wait_quietly(MPI_Request& req) {
  int done = 0;
  for (int spins = 0; !done; ++spins) {
    check_mpi(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (!done && spins > 200) std::this_thread::sleep_for(std::chrono::microseconds(spins > 2000 ? 1000 : 50));
  }
}

// A small all-reduce where ranks may arrive far apart (the first of a step: the others may still be in their
// backward): non-blocking, waited for quietly, so a waiting rank does not take the CPU from one still working
// (several ranks on one machine). The gradient buckets that follow use the blocking call: by then all ranks are there.
void allreduce_quietly(void* data, int count, MPI_Datatype type, MPI_Op op) {
  MPI_Request req;
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, count, type, op, MPI_COMM_WORLD, &req), "MPI_Iallreduce");
  wait_quietly(req);
}

uint64_t splitmix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void broadcast_bytes(void* data, uint64_t n) {
  auto* p = static_cast<char*>(data);
  constexpr uint64_t kChunk = uint64_t(1) << 30;  // MPI counts are int
  for (uint64_t off = 0; off < n; off += kChunk)
    check_mpi(MPI_Bcast(p + off, int(std::min(kChunk, n - off)), MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
}

}  // namespace

void init(int* argc, char*** argv) {
  if (g_active) return;
  int provided = 0;
  check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  // Errors come back as codes (check_mpi turns them into pigment errors) instead of killing the job silently.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  g_active = true;
}

void finalize() {
  if (!g_active) return;
  MPI_Finalize();
  g_active = false;
  g_rank = 0;
  g_size = 1;
}

void abort_others(int code) {
  if (g_active && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

bool active() { return g_active; }
int rank() { return g_rank; }
int size() { return g_size; }

void barrier() {
  if (g_size == 1) return;
  MPI_Request req;
  check_mpi(MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier");
  wait_quietly(req);
}

void root_first(const std::function<void()>& f) {
  if (g_size == 1) return f();
  if (is_root()) {
    try {
      f();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      abort_others(1);
      throw;
    }
  }
  barrier();
  if (!is_root()) f();
}

void shard(LoaderOptions& loader) {
  if (g_size == 1) return;
  loader.batch_size *= g_size;
  loader.shard_rank = g_rank;
  loader.shard_count = g_size;
}

uint64_t rank_seed(uint64_t seed) { return g_rank == 0 ? seed : splitmix(seed ^ splitmix(uint64_t(g_rank))); }

std::vector<std::unique_ptr<Generator>> sample_generators(uint64_t seed, const Batch& batch) {
  const int64_t B = batch.images.defined() ? batch.images.dim(0) : 0;
  PIG_CHECK(batch.positions.empty() || int64_t(batch.positions.size()) == B, "a batch of ", B, " images has ",
            batch.positions.size(), " positions");
  std::vector<std::unique_ptr<Generator>> gens;
  for (int64_t b = 0; b < B; ++b) {
    const uint64_t pos = batch.positions.empty() ? uint64_t(b) : uint64_t(batch.positions[size_t(b)]);
    // Position 0 draws from the step's own generator: a batch of one draws exactly what the trainer drew before it
    // had per-sample generators (its draws, in the same order, all came from that one generator).
    gens.push_back(make_generator("cpu", pos == 0 ? seed : splitmix(seed ^ splitmix(pos + 1))));
  }
  return gens;
}

float share_weight(const Batch& batch) {
  const int64_t B = batch.images.defined() ? batch.images.dim(0) : 0;
  if (B == 0) return 0.f;
  if (g_size == 1 || batch.global_size <= 0 || batch.global_size == B * g_size) return 1.f;
  return float(double(g_size) * double(B) / double(batch.global_size));
}

void average_gradients(std::vector<Param>& params) {
  if (g_size == 1) return;
  // Which parameters have a gradient on any rank.
  std::vector<int> has(params.size());
  for (size_t i = 0; i < params.size(); ++i) has[i] = params[i].grad.defined() ? 1 : 0;
  if (!has.empty()) allreduce_quietly(has.data(), int(has.size()), MPI_INT, MPI_MAX);
  std::vector<Param*> todo;
  for (size_t i = 0; i < params.size(); ++i) {
    if (!has[i]) continue;
    Param& p = params[i];
    if (!p.grad.defined()) p.grad = Tensor::zeros(p.value.shape());
    PIG_CHECK(p.grad.dtype() == DType::F32, "distributed: the gradient of ", p.name, " is not float32");
    todo.push_back(&p);
  }
  std::vector<float> bucket;
  bucket.reserve(kBucketFloats);
  std::vector<Param*> in_bucket;
  auto flush = [&] {
    if (in_bucket.empty()) return;
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, bucket.data(), int(bucket.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce");
    size_t off = 0;
    for (Param* p : in_bucket) {
      float* g = p->grad.f32();
      const size_t n = size_t(p->grad.numel());
      for (size_t k = 0; k < n; ++k) g[k] = bucket[off + k] / float(g_size);
      off += n;
    }
    bucket.clear();
    in_bucket.clear();
  };
  for (Param* p : todo) {
    const size_t n = size_t(p->grad.numel());
    if (n > kBucketFloats) {  // a tensor larger than a bucket goes alone, in place, in int-sized pieces
      flush();
      float* g = p->grad.f32();
      for (size_t off = 0; off < n; off += kBucketFloats) {
        const size_t m = std::min(kBucketFloats, n - off);
        check_mpi(MPI_Allreduce(MPI_IN_PLACE, g + off, int(m), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
      }
      for (size_t k = 0; k < n; ++k) g[k] /= float(g_size);
      continue;
    }
    if (bucket.size() + n > kBucketFloats) flush();
    const float* g = p->grad.f32();
    bucket.insert(bucket.end(), g, g + n);
    in_bucket.push_back(p);
  }
  flush();
}

double mean(double value) {
  if (g_size == 1) return value;
  allreduce_quietly(&value, 1, MPI_DOUBLE, MPI_SUM);
  return value / double(g_size);
}

bool any(bool flag) {
  if (g_size == 1) return flag;
  int v = flag ? 1 : 0;
  allreduce_quietly(&v, 1, MPI_INT, MPI_MAX);
  return v != 0;
}

bool all(bool flag) { return !any(!flag); }

CheckpointSource::CheckpointSource(const fs::path& run_dir) : dir_(run_dir) {
  if (g_size == 1) return;
  // Rank 0 picks the checkpoint folder as the trainer would (checkpoint/, else checkpoint.old/) and sends its files.
  fs::path src;
  std::vector<std::string> names;
  if (is_root()) {
    for (const char* d : {"checkpoint", "checkpoint.old"})
      if (fs::exists(run_dir / d / "state.json")) {
        src = run_dir / d;
        break;
      }
    if (!src.empty())
      for (const auto& e : fs::directory_iterator(src))
        if (e.is_regular_file()) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
  }
  uint64_t count = names.size();
  broadcast_bytes(&count, sizeof count);
  if (!is_root()) {
    char tmpl[] = "/tmp/pigment-resume-XXXXXX";
    PIG_CHECK(::mkdtemp(tmpl) != nullptr, "--resume: cannot make a temporary folder: ", std::strerror(errno));
    temp_ = tmpl;
    dir_ = temp_;
    if (count > 0) fs::create_directories(dir_ / "checkpoint");
  }
  for (uint64_t i = 0; i < count; ++i) {
    std::string name = is_root() ? names[i] : std::string();
    uint64_t len = name.size();
    broadcast_bytes(&len, sizeof len);
    name.resize(len);
    broadcast_bytes(name.data(), len);
    // The file in pieces of 64 MiB (an optimizer state of a full fine-tune is many GB).
    std::ifstream in;
    std::ofstream out;
    uint64_t n = 0;
    if (is_root()) {
      in.open(src / name, std::ios::binary);
      PIG_CHECK(in.good(), "--resume: cannot read ", (src / name).string());
      n = fs::file_size(src / name);
    } else {
      PIG_CHECK(name.find('/') == std::string::npos, "--resume: bad checkpoint file name from rank 0: ", name);
      out.open(dir_ / "checkpoint" / name, std::ios::binary);
    }
    broadcast_bytes(&n, sizeof n);
    std::vector<char> piece(size_t(std::min<uint64_t>(n, uint64_t(64) << 20)));
    for (uint64_t off = 0; off < n; off += piece.size()) {
      const uint64_t m = std::min<uint64_t>(piece.size(), n - off);
      if (is_root()) in.read(piece.data(), std::streamsize(m));
      broadcast_bytes(piece.data(), m);
      if (!is_root()) out.write(piece.data(), std::streamsize(m));
    }
    if (!is_root()) {
      out.close();
      PIG_CHECK(out.good(), "--resume: cannot write ", (dir_ / "checkpoint" / name).string());
    }
  }
}

CheckpointSource::~CheckpointSource() {
  if (temp_.empty()) return;
  std::error_code ec;
  fs::remove_all(temp_, ec);
}

}  // namespace pigment::training::distributed
