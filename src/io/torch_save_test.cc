#include "io/torch_save.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/pytorch_zip.h"
#include "io/zip_writer.h"

namespace pigment {
namespace {

namespace fs = std::filesystem;
using pickle::Object;

// Everything the writer supports: plain values, int and str keys, nested containers, an OrderedDict of tensors
// of several dtypes and ranks (a 0-d scalar, an empty tensor), and the long-string form of BINUNICODE.
Object sample_object() {
  Object sd = Object::ordered_dict();
  sd.set("w", Object::tensor(Tensor::from_vector({2, 3}, {0, 1, 2, 3, 4, 5})));
  Tensor h = Tensor::empty({2}, DType::F16);
  static_cast<uint16_t*>(h.raw())[0] = 0x3c00;  // 1.0
  static_cast<uint16_t*>(h.raw())[1] = 0xc000;  // -2.0
  sd.set("half", Object::tensor(h));
  Tensor l = Tensor::empty({}, DType::I64);
  *static_cast<int64_t*>(l.raw()) = -7;
  sd.set("step", Object::tensor(l));
  sd.set("empty", Object::tensor(Tensor::zeros({0, 4})));
  Object root = Object::dict();
  root.set(Object::integer(768), Object::tuple({sd, Object::ordered_dict()}));
  root.set("name", Object::str("héllo"));
  root.set("long", Object::str(std::string(300, 'x')));
  root.set("none", Object::none());
  root.set("t", Object::boolean(true));
  root.set("f", Object::boolean(false));
  root.set("ints", Object::list({Object::integer(0), Object::integer(255), Object::integer(256),
                                 Object::integer(65536), Object::integer(-1), Object::integer(int64_t(1) << 40)}));
  root.set("reals", Object::real_list({0.3, -1.5, 1e300}));
  root.set("tuple4", Object::tuple({Object::integer(1), Object::integer(2), Object::integer(3), Object::integer(4)}));
  root.set("empty_list", Object::list());
  root.set("empty_dict", Object::dict());
  return root;
}

void check_sample(const PytorchZip& z) {
  const pickle::Value& r = z.root();
  ASSERT_EQ(r.kind, pickle::Kind::Dict);
  EXPECT_EQ(r.get("name")->s, "héllo");
  EXPECT_EQ(r.get("long")->s, std::string(300, 'x'));
  EXPECT_EQ(r.get("none")->kind, pickle::Kind::None);
  EXPECT_TRUE(r.get("t")->b);
  EXPECT_EQ(r.get("f")->kind, pickle::Kind::Bool);
  EXPECT_FALSE(r.get("f")->b);
  EXPECT_EQ(r.get("ints")->repr(), "[0, 255, 256, 65536, -1, 1099511627776]");
  ASSERT_EQ(r.get("reals")->items.size(), 3u);
  EXPECT_EQ(r.get("reals")->items[0]->f, 0.3);
  EXPECT_EQ(r.get("reals")->items[2]->f, 1e300);
  EXPECT_EQ(r.get("tuple4")->repr(), "(1, 2, 3, 4)");
  EXPECT_EQ(r.get("empty_list")->repr(), "[]");
  const pickle::Value* pair = r.get(int64_t(768));
  ASSERT_TRUE(pair && pair->kind == pickle::Kind::Tuple && pair->items.size() == 2);
  const pickle::Value& sd = *pair->items[0];
  EXPECT_TRUE(sd.ordered);
  EXPECT_EQ(z.tensor(*sd.get("w")).to_vector(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(z.tensor(*sd.get("w")).shape(), (Shape{2, 3}));
  EXPECT_EQ(z.tensor(*sd.get("half")).as_f32().to_vector(), (std::vector<float>{1, -2}));
  Tensor step = z.tensor(*sd.get("step"));
  EXPECT_EQ(step.dtype(), DType::I64);
  EXPECT_EQ(step.ndim(), 0);
  EXPECT_EQ(*static_cast<const int64_t*>(step.raw()), -7);
  EXPECT_EQ(z.tensor(*sd.get("empty")).shape(), (Shape{0, 4}));
  EXPECT_EQ(z.tensors().size(), 4u);
}

PytorchZip parse(const std::string& bytes) {
  auto owner = std::make_shared<std::string>(bytes);
  return PytorchZip::parse(owner, reinterpret_cast<const uint8_t*>(owner->data()), owner->size(), "<test>");
}

TEST(TorchSave, RoundTripsThroughPigmentsReader) {
  check_sample(parse(torch_save_bytes(sample_object())));
  const fs::path file = fs::temp_directory_path() / ("pigment-torch-save-" + std::to_string(::getpid()) + ".pt");
  torch_save(file.string(), sample_object(), "sample");
  check_sample(PytorchZip::open(file.string()));
  fs::remove(file);
}

TEST(TorchSave, Zip64RecordsAreReadBack) {
  // Large archives need zip64 fields; forced on a small one, pigment's reader (and zipfile below) must follow them.
  pickle::TorchPickle p = pickle::pickle_for_torch(sample_object());
  ZipWriter z;
  z.force_zip64(true);
  z.add("archive/data.pkl", p.pickle);
  for (size_t i = 0; i < p.storages.size(); ++i)
    z.add("archive/data/" + std::to_string(i), p.storages[i].raw(), p.storages[i].nbytes());
  z.add("archive/version", std::string("3\n"));
  z.finish();
  check_sample(parse(z.bytes()));
}

TEST(TorchSave, BadInputIsAnError) {
  Object d = Object::dict();
  d.set(Object::integer(1), Object::none()).set(Object::real(1.0), Object::none());  // Python: one key
  EXPECT_THROW(pickle::pickle_for_torch(d), Error);
  Object e = Object::dict();
  e.set(Object::list(), Object::none());  // unhashable
  EXPECT_THROW(pickle::pickle_for_torch(e), Error);
  EXPECT_THROW(Object::integer(3).append(Object::none()), Error);
  EXPECT_THROW(torch_save("/nonexistent-folder/x.pt", sample_object()), Error);
  ZipWriter z;
  z.add("a", std::string("1"));
  EXPECT_THROW(z.add("a", std::string("2")), Error);
}

// The file as Python sees it, with Python's own zipfile (CRCs checked), pickletools and pickle modules: the
// opcodes are protocol 2, the only globals are the four torch.load resolves for such a file, every record's data
// starts on a 64-byte boundary, and an Unpickler that rebuilds tensors the way torch._utils._rebuild_tensor_v2
// does (storage bytes, offset, size, stride) gives back the values. torch itself is not installed here; these
// are the facts torch.load depends on.
TEST(TorchSave, PythonsPickleReadsItAsTorchWould) {
  if (std::system("python3 -c 'import zipfile, pickletools' >/dev/null 2>&1") != 0) {
    // scripts/test (after scripts/setup installed python3) sets PIGMENT_TESTS_REQUIRE_ALL: there a missing python3
    // is a failure, as for the CLI tests.
    ASSERT_EQ(std::getenv("PIGMENT_TESTS_REQUIRE_ALL"), nullptr) << "python3 is required by scripts/test";
    GTEST_SKIP() << "no python3";
  }
  const fs::path dir = fs::temp_directory_path() / ("pigment-torch-save-py-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (bool zip64 : {false, true}) {
    const fs::path file = dir / "sample.pt";
    if (!zip64) {
      torch_save(file.string(), sample_object(), "sample");
    } else {
      pickle::TorchPickle p = pickle::pickle_for_torch(sample_object());
      ZipWriter z(file.string());
      z.force_zip64(true);
      z.add("sample/data.pkl", p.pickle);
      for (size_t i = 0; i < p.storages.size(); ++i)
        z.add("sample/data/" + std::to_string(i), p.storages[i].raw(), p.storages[i].nbytes());
      z.add("sample/version", std::string("3\n"));
      z.finish();
    }
    const fs::path script = dir / "check.py";
    std::ofstream(script) << R"PY(
import collections, json, pickle, pickletools, struct, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None, "bad CRC"
names = z.namelist()
folder = names[0].split('/')[0]
assert all(n.split('/')[0] == folder for n in names), names
assert z.read(folder + '/version') == b'3\n'
with open(sys.argv[1], 'rb') as f:
    raw = f.read()
for info in z.infolist():
    nlen, xlen = struct.unpack('<HH', raw[info.header_offset + 26:info.header_offset + 30])
    assert (info.header_offset + 30 + nlen + xlen) % 64 == 0, info.filename
    assert info.compress_type == zipfile.ZIP_STORED, info.filename
data = z.read(folder + '/data.pkl')
ops = list(pickletools.genops(data))
proto = max(op.proto for op, arg, pos in ops)
assert proto <= 2, proto
assert ops[0][0].name == 'PROTO' and ops[0][1] == 2
globals_ = sorted({arg for op, arg, pos in ops if op.name == 'GLOBAL'})
storage_types = {'FloatStorage': 'f', 'HalfStorage': 'e', 'LongStorage': 'q'}
class Storage:
    def __init__(self, t): self.t = t
def rebuild(storage, offset, size, stride, requires_grad, hooks):
    assert isinstance(hooks, collections.OrderedDict) and not hooks and requires_grad is False
    n = 1
    for s in size: n *= s
    out = [storage[offset + sum(i * st for i, st in zip(idx, stride))] for idx in indices(size)]
    return TensorOut(list(size), out)
class TensorOut:
    def __init__(self, size, values): self.size, self.values = size, values
def indices(size):
    if not size: yield (); return
    for i in range(size[0]):
        for rest in indices(size[1:]): yield (i,) + rest
class U(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ('collections', 'OrderedDict'): return collections.OrderedDict
        if (module, name) == ('torch._utils', '_rebuild_tensor_v2'): return rebuild
        if module == 'torch' and name in storage_types: return Storage(storage_types[name])
        raise pickle.UnpicklingError('global %s.%s' % (module, name))
    def persistent_load(self, pid):
        kind, st, key, location, numel = pid
        assert kind == 'storage' and location == 'cpu' and isinstance(key, str)
        b = z.read(folder + '/data/' + key)
        assert len(b) == numel * struct.calcsize(st.t), key
        return list(struct.unpack('<%d%s' % (numel, st.t), b))
import io
obj = U(io.BytesIO(data)).load()
def plain(o):
    if isinstance(o, TensorOut): return {'tensor': o.size, 'values': o.values}
    if isinstance(o, dict):
        return {'dict' if type(o) is dict else 'odict': [[plain(k), plain(v)] for k, v in o.items()]}
    if isinstance(o, tuple): return {'tuple': [plain(i) for i in o]}
    if isinstance(o, list): return [plain(i) for i in o]
    return o
print(json.dumps({'globals': globals_, 'obj': plain(obj)}, sort_keys=True))
)PY";
    const std::string cmd = "python3 " + script.string() + " " + file.string() + " 2>&1";
    std::FILE* pipe = ::popen(cmd.c_str(), "r");
    ASSERT_TRUE(pipe);
    std::string out;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
    const int rc = ::pclose(pipe);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(R"("globals": ["collections OrderedDict", "torch FloatStorage", "torch HalfStorage", )"
                       R"("torch LongStorage", "torch._utils _rebuild_tensor_v2"])"),
              std::string::npos)
        << out;
    // The int key stays an int, the pair a tuple of (OrderedDict, OrderedDict), tensors come back with their values.
    EXPECT_NE(out.find(R"({"dict": [[768, {"tuple": [{"odict": [["w", {"tensor": [2, 3], "values": [0.0, 1.0, 2.0, )"
                       R"(3.0, 4.0, 5.0]}], ["half", {"tensor": [2], "values": [1.0, -2.0]}], ["step", )"
                       R"({"tensor": [], "values": [-7]}], ["empty", {"tensor": [0, 4], "values": []}]]}, )"
                       R"({"odict": []}]}], ["name", "h\u00e9llo"], )"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find(R"(["ints", [0, 255, 256, 65536, -1, 1099511627776]], ["reals", [0.3, -1.5, 1e+300]], )"
                       R"(["tuple4", {"tuple": [1, 2, 3, 4]}], ["empty_list", []], ["empty_dict", {"dict": []}]]})"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find(R"(["none", null], ["t", true], ["f", false])"), std::string::npos) << out;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pigment
