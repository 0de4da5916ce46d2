// libFuzzer target: PyTorch zip checkpoints. The first input byte picks the mode: even, the rest is a zip
// archive as found on disk; odd, the rest is a data.pkl wrapped into a torch.save-style archive with a few
// storages ("0": 16 floats, "1": 4 halves, "2": empty, "3": 3 bytes), so that random pickles reach tensor
// materialisation (views, strides, copies).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "io/pickle_test_writer.h"
#include "io/pytorch_zip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::shared_ptr<std::string> buf;
  if (data[0] & 1) {
    static const std::string storages[4] = {std::string(64, '\x3f'), std::string(8, '\x3c'), "", "abc"};
    buf = std::make_shared<std::string>(pigment::testing::make_torch_zip(
        std::string(reinterpret_cast<const char*>(data + 1), size - 1),
        {{"0", storages[0]}, {"1", storages[1]}, {"2", storages[2]}, {"3", storages[3]}}));
  } else {
    buf = std::make_shared<std::string>(reinterpret_cast<const char*>(data + 1), size - 1);
  }
  try {
    auto z = pigment::PytorchZip::parse(buf, reinterpret_cast<const uint8_t*>(buf->data()), buf->size(), "<fuzz>");
    z.metadata();
    volatile uint8_t sink = 0;
    for (const auto& [name, t] : z.tensors()) {
      auto p = static_cast<const uint8_t*>(t.raw());
      if (t.nbytes()) sink = sink + p[0] + p[t.nbytes() - 1];
    }
    (void)sink;
  } catch (const pigment::Error&) {
  }
  return 0;
}
