// Per-op timing for finding where a model's time goes: with PIGMENT_PROFILE=1 in the environment, each fast op
// adds its wall time (and, where it knows it, its FLOP count) to a row named after the op and its shape class, and
// the table is printed to stderr when the process exits (sorted by total time). Without the variable the cost is
// one well-predicted branch per op call (and
// one atomic add for the FLOP count). Nested ops are counted in both rows.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace pigment::ops::profile {

bool enabled();
// seconds: wall clock; cpu_seconds: the process's CPU time over the same span (all threads; on a busy machine the
// better measure of an op's cost at 1 thread).
void add(const std::string& row, double seconds, double cpu_seconds, double flops);
double process_cpu_seconds();
// Floating-point operations of the ops run so far in this process (2 per multiply-add of the direct algorithm, from
// the ops' shapes: products, convolutions, attention), counted whether or not profiling is on.
double flops_counted();
void count_flops(double flops);
// Rows printed so far, as text (the same table the exit hook prints); for tests and benchmarks.
std::string table();
void reset();

// Times its own lifetime into the row made by name_fn() (called only when profiling is on).
class Scope {
 public:
  template <class F>
  explicit Scope(F&& name_fn, double flops = 0) {
    if (flops > 0 && depth() == 0) count_flops(flops);  // an op inside an op counts once, in the outer one
    ++depth();
    if (enabled()) {
      row_ = name_fn();
      flops_ = flops;
      on_ = true;
      cpu_start_ = process_cpu_seconds();
      start_ = std::chrono::steady_clock::now();
    }
  }
  ~Scope() {
    --depth();
    if (on_)
      add(row_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(),
          process_cpu_seconds() - cpu_start_, flops_);
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  static int& depth() {
    static thread_local int d = 0;
    return d;
  }
  bool on_ = false;
  double flops_ = 0, cpu_start_ = 0;
  std::string row_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace pigment::ops::profile
