#include "text/extra_networks.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace pigment {
namespace {

TEST(ExtraNetworks, LoraTags) {
  auto r = extract_extra_networks("<lora:some_lora:0.8> a portrait, <lora:detail> <lora:style:0.5:0.7>");
  EXPECT_EQ(r.prompt, " a portrait,  ");
  ASSERT_EQ(r.tags.size(), 3u);
  EXPECT_EQ(r.tags[0].kind, "lora");
  EXPECT_EQ(r.tags[0].name, "some_lora");
  EXPECT_EQ(r.tags[0].te_weight, 0.8);
  EXPECT_EQ(r.tags[0].unet_weight, 0.8);
  EXPECT_EQ(r.tags[0].tag, "<lora:some_lora:0.8>");
  EXPECT_EQ(r.tags[1].name, "detail");
  EXPECT_EQ(r.tags[1].te_weight, 1.0);
  EXPECT_EQ(r.tags[1].unet_weight, 1.0);
  EXPECT_EQ(r.tags[2].te_weight, 0.5);
  EXPECT_EQ(r.tags[2].unet_weight, 0.7);
}

TEST(ExtraNetworks, NamedArgumentsAndOtherKinds) {
  auto r = extract_extra_networks("x <lora:a:te=0.25:unet=0.5:dyn=16> <hypernet:h:0.6> <lyco:l: 1.5 > <foo:bar:baz>");
  ASSERT_EQ(r.tags.size(), 4u);
  EXPECT_EQ(r.tags[0].te_weight, 0.25);
  EXPECT_EQ(r.tags[0].unet_weight, 0.5);
  EXPECT_EQ(r.tags[0].dyn_dim, 16);
  EXPECT_EQ(r.tags[0].named.at("dyn"), "16");
  EXPECT_EQ(r.tags[1].kind, "hypernet");
  EXPECT_EQ(r.tags[1].name, "h");
  EXPECT_EQ(r.tags[1].te_weight, 0.6);
  EXPECT_EQ(r.tags[2].te_weight, 1.5);  // float() accepts surrounding spaces
  EXPECT_EQ(r.tags[3].kind, "foo");
  EXPECT_EQ(r.tags[3].items, (std::vector<std::string>{"bar", "baz"}));
  EXPECT_EQ(r.prompt, "x    ");
}

TEST(ExtraNetworks, NotTags) {
  for (const char* p : {"a <b> c", "<:x>", "<lora:>", "<lora:x", "a < b : c"}) {
    auto r = extract_extra_networks(p);
    EXPECT_TRUE(r.tags.empty()) << p;
    EXPECT_EQ(r.prompt, p);
  }
}

TEST(ExtraNetworks, BadWeightNamesTheTag) {
  try {
    extract_extra_networks("a <lora:x:heavy>");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("<lora:x:heavy>"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace pigment
