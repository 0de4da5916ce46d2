#include "core/threading.h"

#include <omp.h>

#include "core/error.h"

namespace pigment {

int num_threads() { return omp_get_max_threads(); }

void set_num_threads(int n) {
  PIG_CHECK(n >= 1, "set_num_threads: expected a positive thread count, got ", n);
  omp_set_num_threads(n);
}

ScopedNumThreads::ScopedNumThreads(int n) : previous_(num_threads()) { set_num_threads(n); }
ScopedNumThreads::~ScopedNumThreads() { omp_set_num_threads(previous_); }

}  // namespace pigment
