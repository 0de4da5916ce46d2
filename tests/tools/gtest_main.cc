// main of the GoogleTest binaries: libgomp's short spin first (core/threading.h; ctest runs tests side by side), then
// GoogleTest's own.
#include <gtest/gtest.h>

#include "core/threading.h"

int main(int argc, char** argv) {
  pigment::use_runtime_settings(argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
