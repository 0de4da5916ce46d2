#include "models/textual_inversion.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>


namespace pigment {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TextualInversion, CorruptAndMissingFilesAreOneLineErrors) {
  fs::path dir = fs::temp_directory_path() / "pigment_ti_test";
  fs::create_directories(dir);
  { std::ofstream(dir / "broken.pt") << "this is not a checkpoint"; }
  std::string e = error_of([&] { load_embedding((dir / "broken.pt").string()); });
  EXPECT_NE(e.find("broken.pt"), std::string::npos);
  EXPECT_EQ(e.find('\n'), std::string::npos);
  EXPECT_NE(error_of([&] { load_embedding((dir / "absent.pt").string()); }).find("not found"), std::string::npos);
  EXPECT_EQ(find_embedding_file(dir.string(), "broken"), (dir / "broken.pt").string());
  EXPECT_EQ(find_embedding_file(dir.string(), "nothing"), "");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pigment
