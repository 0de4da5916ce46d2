#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>

namespace pigment {
namespace {

// Builds a safetensors byte buffer from a header string and data bytes.
std::string make(const std::string& header, const std::string& data = "") {
  std::string s(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) s[i] = char(n >> (8 * i));
  return s + header + data;
}

SafeTensors parse(const std::string& bytes) {
  auto buf = std::make_shared<std::string>(bytes);
  return SafeTensors::parse(buf, reinterpret_cast<const uint8_t*>(buf->data()), buf->size(), "<test>");
}

std::string error_of(const std::string& bytes) {
  try {
    parse(bytes);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SafeTensors, ReadsTensorsAndMetadata) {
  float v[3] = {1, 2, 3};
  std::string data(reinterpret_cast<char*>(v), 12);
  auto st = parse(make(R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                       R"("e":{"dtype":"F16","shape":[0,4],"data_offsets":[12,12]}})",
                       data));
  ASSERT_EQ(st.entries().size(), 2u);
  EXPECT_EQ(st.metadata().at("format"), "pt");
  Tensor a = st.get("a");
  EXPECT_EQ(a.shape(), (Shape{3}));
  EXPECT_EQ(a.f32()[2], 3.f);
  EXPECT_EQ(st.get("e").numel(), 0);
}

TEST(SafeTensors, ScalarTensor) {
  float v = 7;
  auto st = parse(make(R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})", std::string((char*)&v, 4)));
  EXPECT_EQ(st.get("s").numel(), 1);
  EXPECT_EQ(st.get("s").f32()[0], 7.f);
}

TEST(SafeTensors, RefusesMalformedFiles) {
  EXPECT_NE(error_of("abc").find("shorter than"), std::string::npos);
  std::string big(8, '\xff');
  EXPECT_NE(error_of(big).find("exceeds"), std::string::npos);
  EXPECT_NE(error_of(make("{\"a\":", "")).find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(make("[1,2]")).find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of(make(R"({"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", "xxxx")).find("unknown dtype"),
            std::string::npos);
  EXPECT_NE(error_of(make(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "xxxx")).find("needs 8"),
            std::string::npos);
  EXPECT_NE(error_of(make(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", "xxxx")).find("outside"),
            std::string::npos);
  EXPECT_NE(error_of(make(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "xxxx")).find("negative"),
            std::string::npos);
  EXPECT_NE(error_of(make(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                          "xxxx"))
                .find("overlaps"),
            std::string::npos);
  EXPECT_NE(error_of(make(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          "xxxxxxxx"))
                .find("twice"),
            std::string::npos);
  EXPECT_NE(error_of(make(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,4]}})", "xxxx")).find("absurd"),
            std::string::npos);
  EXPECT_NE(error_of(make(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", "xxxxxxxx")).find("gap"),
            std::string::npos);
  EXPECT_NE(error_of(make(R"({"__metadata__":{"k":1}})")).find("not a string"), std::string::npos);
}

TEST(SafeTensors, WriteThenRead) {
  auto path = (std::filesystem::temp_directory_path() / "pigment_st_test.safetensors").string();
  Tensor a = Tensor::from_vector({2, 2}, {1, 2, 3, 4});
  Tensor b = a.to(DType::F16);
  write_safetensors(path, {{"a", a}, {"b", b}}, {{"k", "v"}});
  auto st = SafeTensors::open(path);
  EXPECT_EQ(st.metadata().at("k"), "v");
  EXPECT_EQ(st.get("b").dtype(), DType::F16);
  EXPECT_EQ(st.get("b").as_f32().f32()[3], 4.f);
  EXPECT_EQ(st.get("a").f32()[1], 2.f);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace pigment
