#include "core/threading.h"

#include <omp.h>
#include <unistd.h>

#include <cstdlib>

#include "core/error.h"

namespace pigment {

int num_threads() { return omp_get_max_threads(); }

void set_num_threads(int n) {
  PIG_CHECK(n >= 1, "set_num_threads: expected a positive thread count, got ", n);
  omp_set_num_threads(n);
}

ScopedNumThreads::ScopedNumThreads(int n) : previous_(num_threads()) { set_num_threads(n); }
ScopedNumThreads::~ScopedNumThreads() { omp_set_num_threads(previous_); }

void use_short_openmp_spin(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || !argv || !argv[0]) return;
  if (setenv("GOMP_SPINCOUNT", "1000", 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: run on as we are (the variable stays set for children)
}

}  // namespace pigment
