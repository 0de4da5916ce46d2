#include "core/threading.h"

#include <omp.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"

namespace pigment {

int num_threads() { return omp_get_max_threads(); }

void set_num_threads(int n) {
  PIG_CHECK(n >= 1, "set_num_threads: expected a positive thread count, got ", n);
  omp_set_num_threads(n);
}

ScopedNumThreads::ScopedNumThreads(int n) : previous_(num_threads()) { set_num_threads(n); }
ScopedNumThreads::~ScopedNumThreads() { omp_set_num_threads(previous_); }

void use_runtime_settings(char** argv) {
  if (!argv || !argv[0] || std::getenv("PIGMENT_RUNTIME_SETTINGS")) return;
  bool changed = false;
  if (!std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT"))
    changed |= setenv("GOMP_SPINCOUNT", "1000", 1) == 0;
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (!tunables || !std::strstr(tunables, "glibc.malloc.hugetlb")) {
    const std::string value = tunables && *tunables ? std::string(tunables) + ":glibc.malloc.hugetlb=1"
                                                    : std::string("glibc.malloc.hugetlb=1");
    changed |= setenv("GLIBC_TUNABLES", value.c_str(), 1) == 0;
  }
  if (!changed || setenv("PIGMENT_RUNTIME_SETTINGS", "1", 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: run on as we are (the variables stay set for children)
}

}  // namespace pigment
