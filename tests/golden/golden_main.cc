// pigment-golden CASE_DIR…: runs golden cases through the public API, one line per compared tensor.
// Exit status 0 only when every tensor of every case passed; an unsupported case is a failure.
#include <cstdio>

#include "golden.h"
#include "ops/isa_cap.h"
#include "core/threading.h"

int main(int argc, char** argv) {
  pigment::use_runtime_settings(argv);  // core/threading.h
  using namespace pigment::golden;
  if (argc < 2) {
    std::fprintf(stderr, "usage: pigment-golden CASE_DIR...\n");
    return 2;
  }
  // Which kernels compute the results ($PIGMENT_MAX_ISA may cap them; the forced-AVX2 ctest entry does).
  std::printf("kernels: Highway %s, oneDNN %s\n", pigment::ops::simd_target_name(), pigment::ops::onednn_isa_name());
  int failed_cases = 0;
  for (int i = 1; i < argc; ++i) {
    try {
      Case c(argv[i]);
      const Runner* run = find_runner(c.name());
      std::printf("== %s (%s)\n", c.name().c_str(), c.dir().c_str());
      if (!run) {
        std::printf("%-60s FAIL: unsupported case (no runner for it)\n", c.name().c_str());
        ++failed_cases;
        continue;
      }
      (*run)(c);
      if (c.compared() == 0) c.failure(c.name(), "the runner compared nothing");
      std::printf("-- %s: %d compared, %d failed\n", c.name().c_str(), c.compared(), c.failed());
      if (c.failed()) ++failed_cases;
    } catch (const std::exception& e) {
      std::printf("%-60s FAIL: error: %s\n", argv[i], e.what());
      ++failed_cases;
    }
  }
  std::printf("%d of %d cases passed\n", argc - 1 - failed_cases, argc - 1);
  return failed_cases ? 1 : 0;
}
