// Data-parallel training over OpenMPI (`mpirun -np N pigment train ... --distributed`). The only place that talks
// MPI: distributed.cc. The trainer calls these hooks; without init() (a plain `pigment train`) every hook is a no-op
// (one process, rank 0 of 1) and the trainer runs as it always has.
//
// How a run is split: every rank runs the same data loader over the *global* batch (size × --train-batch-size
// images, in the order one process would use with that batch) and loads only its own slice of it; each sample's
// random draws (latent sample, caption dropout, timestep, noise) come from a generator seeded by (seed, micro-step,
// the sample's position in the global batch), so the union of the ranks' draws is what one process draws. Gradients
// are averaged with MPI_Allreduce over fused buckets after the backward pass (not overlapped with it); a rank's
// gradient is weighted by its share of the global batch, so an uneven last batch still gives the global mean. Rank
// 0 alone writes the log, checkpoints, sample images and the output; the others wait at a barrier. On --resume
// rank 0 reads the checkpoint and sends it to the others, so only rank 0's host needs the run folder.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

#include "sampling/rng.h"
#include "training/dataset.h"
#include "training/optimizer.h"

namespace pigment::training::distributed {

// MPI_Init_thread (funneled: only the main thread calls MPI); after it, active() is true. Throws when MPI cannot
// start. Call once, before train().
void init(int* argc, char*** argv);
// MPI_Finalize (no-op when not initialised).
void finalize();
// After a fatal error on this rank: MPI_Abort(code) when more than one process runs (the others would wait for
// this one forever), else returns.
void abort_others(int code);

bool active();
int rank();  // 0 when not active
int size();  // 1 when not active
inline bool is_root() { return rank() == 0; }

// Waits for every rank, without spinning on a CPU (the others may be writing a checkpoint or sample images).
void barrier();
// Runs f on rank 0 first and on the other ranks after it returned (e.g. something that writes files the others
// then find, such as DreamBooth's class images). An exception on rank 0 aborts the run on every rank.
void root_first(const std::function<void()>& f);

// The loader of a rank: the batch becomes the global batch (size × batch_size) and the rank loads only its slice.
void shard(LoaderOptions& loader);
// The generator seed of this rank for a draw that is not per sample (LoRA network dropout, a method's own
// objective): the seed itself on rank 0 (so one process draws as it always has), a mix of it and the rank elsewhere.
uint64_t rank_seed(uint64_t seed);
// One generator per sample of `batch`, seeded by (seed, the sample's position in the global batch); position 0's is
// seeded by `seed` itself, so a batch of one draws what a single generator of the step draws.
std::vector<std::unique_ptr<Generator>> sample_generators(uint64_t seed, const Batch& batch);
// The factor of this rank's loss and gradient that makes the average over ranks the mean over the global batch:
// size × (this rank's images / the global batch's images); 1 when the batch splits evenly, 0 for an empty share.
float share_weight(const Batch& batch);

// Averages the gradients over the ranks in place (MPI_Allreduce on fused float32 buckets). A parameter that has a
// gradient on some rank but not on this one takes zeros here; one with none anywhere stays undefined.
void average_gradients(std::vector<Param>& params);
// The mean of a value over the ranks (the logged loss).
double mean(double value);
// True when `flag` is true on any rank (a stop signal on one rank stops all at the same step).
bool any(bool flag);
// True on every rank when it is true on every rank.
bool all(bool flag);

// --resume: the run folder to read the checkpoint from. Rank 0 reads its own; it sends the files of its checkpoint
// (checkpoint/ or, after an interrupted replacement, checkpoint.old/) to the others, which keep them in a temporary
// folder for as long as this object lives.
class CheckpointSource {
 public:
  explicit CheckpointSource(const std::filesystem::path& run_dir);
  ~CheckpointSource();
  CheckpointSource(const CheckpointSource&) = delete;
  CheckpointSource& operator=(const CheckpointSource&) = delete;
  const std::filesystem::path& run_dir() const { return dir_; }

 private:
  std::filesystem::path dir_, temp_;
};

}  // namespace pigment::training::distributed
