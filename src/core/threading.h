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

// Settings of the C and OpenMP run-times that are read from the environment before main runs, so this sets what is
// missing and executes the program again (same pid, same arguments; once: PIGMENT_RUNTIME_SETTINGS marks the second
// run). A value the user set is kept. Returns when nothing was to be done or the re-execution failed (the program
// then runs with the run-times' defaults). Call first thing in main.
// - GOMP_SPINCOUNT=1000 unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set. GNU OpenMP (which oneDNN shares) lets a
//   thread that waits at a barrier spin 300,000 times before it sleeps. On a machine whose cores other work also
//   wants — two pigment processes, a server beside a build, CI running tests in parallel — the spinning thread holds
//   the core its partner needs, and many short parallel regions in a row collapse: two tiny-model generations side
//   by side took 20 s instead of 1.6 s, two SD1.5 256x256 runs 47 s instead of 26 s (AMD EPYC, 2 cores). 1000 (the
//   count libgomp itself uses when it knows its threads outnumber the cores) gave the same speed alone and
//   near-ideal speed side by side.
// - GLIBC_TUNABLES gains glibc.malloc.hugetlb=1 unless it names that tunable (glibc >= 2.35; older ones ignore it):
//   malloc's heap then asks for transparent huge pages. The pipelines hand free heap pages back between phases
//   (pipelines/memory_mode.h) and fault them in again in the next image's first steps; in 4 KiB pages that made the
//   second image's first steps 28-30 % slower than the steady ones at SD1.5 512x512, with huge pages 9 %, and the
//   first image's first two steps 6.3 s -> 4.6 s (docs/performance.md, "Huge pages for malloc's heap").
void use_runtime_settings(char** argv);

}  // namespace pigment
