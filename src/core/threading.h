// Threads. pigment runs its kernels on one OpenMP pool (oneDNN uses the same one). Results never depend on the
// thread count: kernels split work into pieces whose size is fixed by the data, not by the number of threads, and
// every output element is computed by exactly one thread in a fixed order.
#pragma once

namespace pigment {

// Threads used by the next parallel region (omp_get_max_threads()).
int num_threads();
// Sets the thread count of the calling thread's next parallel regions (n >= 1).
void set_num_threads(int n);

// Sets the thread count for a scope and restores the previous one on exit.
class ScopedNumThreads {
 public:
  explicit ScopedNumThreads(int n);
  ~ScopedNumThreads();
  ScopedNumThreads(const ScopedNumThreads&) = delete;
  ScopedNumThreads& operator=(const ScopedNumThreads&) = delete;

 private:
  int previous_;
};

}  // namespace pigment
