#include "io/pytorch_zip.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "io/mapped_file.h"
#include "io/pickle_test_writer.h"
#include "io/safetensors.h"

namespace pigment {
namespace {

using pickle::Kind;
using testing::make_torch_zip;
using testing::make_zip;
using testing::PickleWriter;
using testing::raw_bytes;

std::string golden(const std::string& rel) {
  const char* s = std::getenv("PIGMENT_SHARED_DIR");
  return std::string(s ? s : "../shared") + "/golden/" + rel;
}

PytorchZip parse(const std::string& bytes) {
  auto buf = std::make_shared<std::string>(bytes);
  return PytorchZip::parse(buf, reinterpret_cast<const uint8_t*>(buf->data()), buf->size(), "<test>");
}

std::string error_of(const std::string& bytes) {
  try {
    auto z = parse(bytes);
    z.tensors();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool inside(const Tensor& t, const MappedFile& f) {
  auto p = static_cast<const uint8_t*>(t.raw());
  return p >= f.data() && p + t.nbytes() <= f.data() + f.size();
}

TEST(PytorchZip, ReadsA1111TextualInversionEmbedding) {
  auto z = PytorchZip::open(golden("ti/embeddings/my-concept.pt"));
  const auto& r = z.root();
  ASSERT_EQ(r.kind, Kind::Dict);
  EXPECT_EQ(r.get("string_to_token")->get("*")->i, 265);
  EXPECT_EQ(r.get("name")->s, "my-concept");
  EXPECT_EQ(r.get("step")->i, 1000);
  EXPECT_EQ(r.get("sd_checkpoint")->kind, Kind::None);
  auto ts = z.tensors();
  ASSERT_EQ(ts.size(), 1u);
  Tensor e = ts.at("string_to_param.*");
  EXPECT_EQ(e.shape(), (Shape{3, 32}));
  EXPECT_EQ(e.dtype(), DType::F32);
  auto ref = SafeTensors::open(golden("ti/textual_inversion/tensors.safetensors")).get("embedding.my-concept");
  EXPECT_EQ(e.to_vector(), ref.to_vector());
  EXPECT_EQ(z.metadata().at("name"), "my-concept");
  EXPECT_EQ(z.metadata().at("step"), "1000");
}

TEST(PytorchZip, ReadsA1111HypernetworkAsViewsIntoTheFile) {
  std::string path = golden("hypernetwork/a1111/tiny_hypernet.pt");
  auto file = MappedFile::open(path);
  auto z = PytorchZip::parse(file, file->data(), file->size(), path);
  const auto& r = z.root();
  EXPECT_EQ(r.get("layer_structure")->repr(), "[1, 2, 1]");
  EXPECT_EQ(r.get("dropout_structure")->repr(), "[0, 0.3, 0]");
  EXPECT_EQ(r.get("activation_func")->s, "relu");
  EXPECT_TRUE(r.get("is_layer_norm")->b);
  const auto* modules = r.get(32);
  ASSERT_TRUE(modules && modules->kind == Kind::Tuple && modules->items.size() == 2);
  EXPECT_TRUE(modules->items[0]->ordered);
  auto ts = z.tensors();
  auto ref = SafeTensors::open(golden("hypernetwork/a1111/tiny_hypernet_weights.safetensors"));
  ASSERT_EQ(ts.size(), ref.entries().size());
  for (const auto& e : ref.entries()) {
    // The convenience copy names the pair k / v; the pickle holds a (k, v) tuple.
    std::string name = e.name;
    size_t dot = name.find('.');
    std::string kv = name.substr(dot + 1, 1) == "k" ? "0" : "1";
    std::string ours = name.substr(0, dot) + "." + kv + name.substr(dot + 2);
    ASSERT_TRUE(ts.count(ours)) << ours;
    EXPECT_EQ(ts.at(ours).shape(), e.shape) << ours;
    EXPECT_EQ(ts.at(ours).to_vector(), ref.get(e.name).to_vector()) << ours;
    EXPECT_TRUE(inside(ts.at(ours), *file)) << ours << " should be a view into the mapped file";
  }
}

// A Lightning-style SD checkpoint with junk beside the state dict, a strided view, a 0-d scalar, an empty
// tensor, a half tensor, a parameter and an OrderedDict with _metadata.
std::string sd_like_pickle() {
  PickleWriter w;
  w.proto().empty_dict().mark();
  w.str("epoch").integer(6).str("global_step").integer(470000).str("pytorch-lightning_version").str("1.4.2");
  w.str("state_dict").ordered_dict().mark();
  w.str("model.diffusion_model.w").tensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1});
  w.str("model.diffusion_model.w_t").tensor("FloatStorage", "0", 6, 0, {3, 2}, {1, 3});
  w.str("model.diffusion_model.row1").tensor("FloatStorage", "0", 6, 3, {3}, {1});
  w.str("scalar").tensor("LongStorage", "1", 1, 0, {}, {});
  w.str("empty").tensor("FloatStorage", "2", 0, 0, {0, 4}, {4, 1});
  w.str("half").tensor("HalfStorage", "3", 2, 0, {2}, {1});
  w.str("param").global("torch._utils", "_rebuild_parameter");
  w.tensor("FloatStorage", "0", 6, 2, {2}, {2}).boolean(true).ordered_dict().tuple_n(3).reduce();
  w.setitems();
  w.empty_dict().str("_metadata").empty_dict().str("").empty_dict().str("version").integer(1).setitem().setitem();
  w.setitem().build();  // state_dict._metadata
  w.setitems().stop();
  return w.bytes();
}

testing::Records sd_like_storages() {
  return {{"0", raw_bytes(std::vector<float>{0, 1, 2, 3, 4, 5})},
          {"1", raw_bytes(std::vector<int64_t>{42})},
          {"2", ""},
          {"3", raw_bytes(std::vector<uint16_t>{0x3c00, 0xc000})}};
}

TEST(PytorchZip, StripsStateDictAndMaterialisesViews) {
  for (bool deflate : {false, true}) {
    auto z = parse(make_torch_zip(sd_like_pickle(), sd_like_storages(), deflate));
    auto ts = z.tensors();
    ASSERT_EQ(ts.size(), 7u);
    EXPECT_EQ(ts.at("model.diffusion_model.w").to_vector(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(ts.at("model.diffusion_model.w_t").shape(), (Shape{3, 2}));
    EXPECT_EQ(ts.at("model.diffusion_model.w_t").to_vector(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
    EXPECT_EQ(ts.at("model.diffusion_model.row1").to_vector(), (std::vector<float>{3, 4, 5}));
    EXPECT_EQ(ts.at("scalar").ndim(), 0);
    EXPECT_EQ(ts.at("scalar").dtype(), DType::I64);
    EXPECT_EQ(ts.at("scalar").data<int64_t>()[0], 42);
    EXPECT_EQ(ts.at("empty").shape(), (Shape{0, 4}));
    EXPECT_EQ(ts.at("half").dtype(), DType::F16);
    EXPECT_EQ(ts.at("half").to_vector(), (std::vector<float>{1, -2}));
    EXPECT_EQ(ts.at("param").to_vector(), (std::vector<float>{2, 4}));
    auto md = z.metadata();
    EXPECT_EQ(md.at("global_step"), "470000");
    EXPECT_EQ(md.at("pytorch-lightning_version"), "1.4.2");
    EXPECT_EQ(md.count("state_dict"), 0u);
    EXPECT_NE(z.root().get("state_dict")->attrs, nullptr);
  }
}

TEST(PytorchZip, RefusesMaliciousAndMalformedArchives) {
  // Code execution attempts, also nested deep inside a dict value.
  for (const char* g : {"os\nsystem", "builtins\neval", "builtins\nexec", "subprocess\nPopen", "posix\nsystem"}) {
    std::string mod(g, std::strchr(g, '\n')), fn(std::strchr(g, '\n') + 1);
    PickleWriter w;
    w.proto().empty_dict().str("state_dict").empty_dict().str("w").empty_dict().str("x");
    w.global(mod, fn).str("touch /tmp/pwned").tuple_n(1).reduce().setitem().setitem().setitem().stop();
    std::string e = error_of(make_torch_zip(w.bytes(), {}));
    EXPECT_NE(e.find("refusing pickle global '" + mod + "." + fn + "'"), std::string::npos) << e;
    EXPECT_NE(e.find("archive/data.pkl"), std::string::npos) << e;
  }
  std::string good = make_torch_zip(sd_like_pickle(), sd_like_storages());
  ASSERT_EQ(error_of(good), "");
  // Every truncation of a valid archive fails cleanly.
  for (size_t n = 0; n < good.size(); ++n) EXPECT_NE(error_of(good.substr(0, n)), "") << n;
  EXPECT_NE(error_of("").find("too short"), std::string::npos);
  EXPECT_NE(error_of(std::string(100, 'x')).find("not a valid zip"), std::string::npos);
  EXPECT_NE(error_of("\x80\x02\x8a\x0a" + std::string(100, 'x')).find("legacy"), std::string::npos);
  // No data.pkl, or data.pkl not inside a folder.
  EXPECT_NE(error_of(make_zip({{"archive/other.pkl", "N."}})).find("no <folder>/data.pkl"), std::string::npos);
  EXPECT_NE(error_of(make_zip({{"data.pkl", "N."}})).find("no <folder>/data.pkl"), std::string::npos);
  // A storage without its record, and one whose record is short.
  auto storages = sd_like_storages();
  storages.erase(storages.begin());
  EXPECT_NE(error_of(make_torch_zip(sd_like_pickle(), storages)).find("no record 'archive/data/0'"),
            std::string::npos);
  storages = sd_like_storages();
  storages[0].second.resize(20);
  std::string e = error_of(make_torch_zip(sd_like_pickle(), storages));
  EXPECT_NE(e.find("record 'archive/data/0' is short: 20 bytes"), std::string::npos) << e;
  // A view past its storage.
  PickleWriter past;
  past.proto().empty_dict().str("w").tensor("FloatStorage", "0", 6, 4, {3}, {1}).setitem().stop();
  EXPECT_NE(error_of(make_torch_zip(past.bytes(), sd_like_storages())).find("runs past its storage"),
            std::string::npos);
  // Absurd storage sizes never allocate.
  PickleWriter absurd;
  absurd.proto().empty_dict().str("w").tensor("FloatStorage", "0", int64_t(1) << 40, 0, {1}, {1}).setitem().stop();
  e = error_of(make_torch_zip(absurd.bytes(), sd_like_storages(), true));
  EXPECT_NE(e.find("is short"), std::string::npos) << e;
  // Big-endian data.
  std::string be = make_zip({{"a/data.pkl", "N."}, {"a/byteorder", "big"}});
  EXPECT_NE(error_of(be).find("byte order"), std::string::npos);
  // Zero-stride views may not expand a tiny storage into gigabytes.
  PickleWriter expand;
  expand.proto().empty_dict().str("w").tensor("FloatStorage", "0", 6, 0, {1 << 20, 1 << 20}, {0, 0}).setitem().stop();
  EXPECT_NE(error_of(make_torch_zip(expand.bytes(), sd_like_storages())).find("too often"), std::string::npos);
}

TEST(PytorchZip, CorruptedBytesNeverCrash) {
  std::string good = make_torch_zip(sd_like_pickle(), sd_like_storages(), true);
  uint32_t x = 12345;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string s = good;
    for (int k = 0; k < 1 + trial % 4; ++k) {
      x = x * 1664525u + 1013904223u;
      s[(x >> 8) % s.size()] = char(x >> 24);
    }
    error_of(s);
  }
}

}  // namespace
}  // namespace pigment
