#include "core/threading.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace pigment {
namespace {

// The test binaries call use_runtime_settings first thing (tests/tools/gtest_main.cc), as every pigment program does:
// this process must have been executed again with the settings in its environment (or the user's own values kept).
TEST(RuntimeSettings, TheProcessRunsWithThem) {
  EXPECT_TRUE(std::getenv("GOMP_SPINCOUNT") || std::getenv("OMP_WAIT_POLICY"));
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  ASSERT_NE(tunables, nullptr);
  EXPECT_NE(std::string(tunables).find("glibc.malloc.hugetlb"), std::string::npos) << tunables;
  EXPECT_NE(std::getenv("PIGMENT_RUNTIME_SETTINGS"), nullptr);  // the second run does not execute itself again
}

TEST(RuntimeSettings, ThreadCountScopesRestore) {
  const int before = num_threads();
  {
    ScopedNumThreads one(1);
    EXPECT_EQ(num_threads(), 1);
  }
  EXPECT_EQ(num_threads(), before);
}

}  // namespace
}  // namespace pigment
