#include "models/model_config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "core/error.h"

namespace pigment {
namespace {

ModelConfig make() {
  return ModelConfig(nlohmann::json::parse(R"({"a": 3, "f": 0.5, "whole": 32.0, "b": true, "s": "silu",
    "list": [1, 2, 3], "names": ["x", "y"], "nul": null, "per": 8})"),
                     "test.json");
}

TEST(ModelConfig, TypedGetters) {
  ModelConfig c = make();
  EXPECT_EQ(c.get_int("a"), 3);
  EXPECT_EQ(c.get_int("whole"), 32);
  EXPECT_DOUBLE_EQ(c.get_double("f"), 0.5);
  EXPECT_DOUBLE_EQ(c.get_double("a"), 3.0);
  EXPECT_TRUE(c.get_bool("b"));
  EXPECT_EQ(c.get_string("s"), "silu");
  EXPECT_EQ(c.get_ints("list"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(c.get_strings("names"), (std::vector<std::string>{"x", "y"}));
}

TEST(ModelConfig, DefaultsForMissingAndNull) {
  ModelConfig c = make();
  EXPECT_FALSE(c.has("nul"));
  EXPECT_FALSE(c.has("absent"));
  EXPECT_EQ(c.get_int("nul", 7), 7);
  EXPECT_EQ(c.get_int("absent", 9), 9);
  EXPECT_EQ(c.get_string("absent", "gelu"), "gelu");
  EXPECT_EQ(c.get_ints_per_block("absent", 2, 5), (std::vector<int64_t>{5, 5}));
  EXPECT_EQ(c.get_ints_per_block("per", 3, 1), (std::vector<int64_t>{8, 8, 8}));
  EXPECT_EQ(c.get_ints_per_block("list", 3), (std::vector<int64_t>{1, 2, 3}));
}

TEST(ModelConfig, ErrorsNameFileAndKey) {
  ModelConfig c = make();
  try {
    c.get_int("missing");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test.json"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
  }
  EXPECT_THROW(c.get_int("s"), Error);
  EXPECT_THROW(c.get_int("f"), Error);
  EXPECT_THROW(c.get_int("s", 1), Error);  // present but wrong type is not silently replaced
  EXPECT_THROW(c.get_bool("a"), Error);
  EXPECT_THROW(c.get_ints("names"), Error);
  EXPECT_THROW(c.get_ints_per_block("list", 4), Error);
  EXPECT_THROW(ModelConfig(nlohmann::json::array(), "x"), Error);
}

TEST(ModelConfig, LoadsFolderOrFile) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("pigment_model_config_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "config.json");
    f << R"({"hidden_size": 32})";
  }
  EXPECT_EQ(ModelConfig::load(dir.string()).get_int("hidden_size"), 32);
  EXPECT_EQ(ModelConfig::load((dir / "config.json").string()).get_int("hidden_size"), 32);
  {
    std::ofstream f(dir / "bad.json");
    f << "{not json";
  }
  EXPECT_THROW(ModelConfig::load((dir / "bad.json").string()), Error);
  EXPECT_THROW(ModelConfig::load((dir / "absent.json").string()), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pigment
