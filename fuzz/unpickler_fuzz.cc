// libFuzzer target: the restricted unpickler, the tensor-name flattening and the value rendering.
#include <cstddef>
#include <cstdint>

#include "io/unpickler.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pigment::pickle;
  try {
    auto doc = unpickle(data, size, "<fuzz>");
    const Value& root = doc->root();
    root.repr(500);
    root.get("state_dict");
    root.get(320);
    for (const auto& [name, v] : flatten_tensors(root, "<fuzz>")) v->tensor.contiguous();
  } catch (const pigment::Error&) {
  }
  return 0;
}
