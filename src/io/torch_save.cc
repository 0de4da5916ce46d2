#include "io/torch_save.h"

#include "core/error.h"
#include "io/zip_writer.h"

namespace pigment {

namespace {
void write_archive(ZipWriter& z, const pickle::Object& root, const std::string& archive) {
  PIG_CHECK(!archive.empty() && archive.find('/') == std::string::npos, "torch_save: bad archive folder name '",
            archive, "'");
  pickle::TorchPickle p = pickle::pickle_for_torch(root);
  z.add(archive + "/data.pkl", p.pickle);
  z.add(archive + "/byteorder", std::string("little"));
  for (size_t i = 0; i < p.storages.size(); ++i)
    z.add(archive + "/data/" + std::to_string(i), p.storages[i].raw(), p.storages[i].nbytes());
  z.add(archive + "/version", std::string("3\n"));
  z.finish();
}
}  // namespace

void torch_save(const std::string& path, const pickle::Object& root, const std::string& archive) {
  ZipWriter z(path);
  write_archive(z, root, archive);
}

std::string torch_save_bytes(const pickle::Object& root, const std::string& archive) {
  ZipWriter z;
  write_archive(z, root, archive);
  return z.bytes();
}

}  // namespace pigment
