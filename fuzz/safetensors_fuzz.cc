// libFuzzer target: safetensors headers and data areas. Every tensor view must lie inside the input.
#include <cstddef>
#include <cstdint>

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto st = pigment::SafeTensors::parse(nullptr, data, size, "<fuzz>");
    volatile uint8_t sink = 0;
    for (const auto& e : st.entries()) {
      pigment::Tensor t = st.get(e.name);
      auto p = static_cast<const uint8_t*>(t.raw());
      if (t.nbytes()) sink = sink + p[0] + p[t.nbytes() - 1];  // ASan checks both ends
    }
    (void)sink;
  } catch (const pigment::Error&) {
  }
  return 0;
}
