#include "io/unpickler.h"

#include <gtest/gtest.h>

#include <random>

#include "io/pickle_test_writer.h"

namespace pigment::pickle {
namespace {

using testing::PickleWriter;

std::shared_ptr<const Document> load(const std::string& bytes, const Limits& lim = {}) {
  return unpickle(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "<test>", lim);
}

std::string error_of(const std::string& bytes, const Limits& lim = {}) {
  try {
    auto d = load(bytes, lim);
    flatten_tensors(d->root(), "<test>");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Unpickler, PlainValues) {
  PickleWriter w;
  w.proto().empty_dict().binput(0).mark();
  w.str("none").none();
  w.str("t").boolean(true);
  w.str("small").integer(7).str("mid").integer(1000).str("neg").integer(-5).str("big").integer(int64_t(1) << 40);
  w.str("pi").real(3.25);
  w.str("list").empty_list().mark().integer(1).integer(2).integer(1).appends();
  w.str("tuple").integer(1).str("x").tuple_n(2);
  w.integer(320).str("int key");
  w.setitems().stop();
  auto d = load(w.bytes());
  const Value& r = d->root();
  ASSERT_EQ(r.kind, Kind::Dict);
  EXPECT_EQ(r.get("none")->kind, Kind::None);
  EXPECT_TRUE(r.get("t")->b);
  EXPECT_EQ(r.get("small")->i, 7);
  EXPECT_EQ(r.get("mid")->i, 1000);
  EXPECT_EQ(r.get("neg")->i, -5);
  EXPECT_EQ(r.get("big")->i, int64_t(1) << 40);
  EXPECT_EQ(r.get("pi")->f, 3.25);
  EXPECT_EQ(r.get("list")->repr(), "[1, 2, 1]");
  EXPECT_EQ(r.get("tuple")->repr(), "(1, 'x')");
  EXPECT_EQ(r.get(320)->s, "int key");
  EXPECT_EQ(r.get("missing"), nullptr);
}

TEST(Unpickler, TextOpcodesMemoAndProtocol4) {
  // Protocol 0/1 text forms, a FRAME, MEMOIZE and STACK_GLOBAL (protocol 4), and duplicate dict keys.
  PickleWriter w;
  w.proto(4).op(0x95).raw(std::string(8, '\0'));  // FRAME of length 0 is fine: framing is advisory
  w.op('(').op('I').raw("42\n").op('L').raw("-9L\n").op('F').raw("0.5\n").op('I').raw("01\n").op('l');
  w.op(0x94);                              // MEMOIZE → memo 0
  w.op('p').raw("7\n");                    // PUT 7
  w.op('0');                               // POP
  w.op('g').raw("7\n");                    // GET 7
  w.stack_global("collections", "OrderedDict").empty_tuple().reduce();
  w.str("a").integer(1).setitem().str("a").integer(2).setitem();
  w.tuple_n(2).stop();
  auto d = load(w.bytes());
  const Value& r = d->root();
  ASSERT_EQ(r.kind, Kind::Tuple);
  EXPECT_EQ(r.items[0]->repr(), "[42, -9, 0.5, True]");
  EXPECT_TRUE(r.items[1]->ordered);
  EXPECT_EQ(r.items[1]->entries.size(), 1u);
  EXPECT_EQ(r.items[1]->get("a")->i, 2);
}

TEST(Unpickler, LongIntegers) {
  PickleWriter w;
  w.proto().mark();
  w.op(0x8a).op(1).op(0xff);                                       // LONG1 -1
  w.op(0x8a).op(0);                                                // LONG1 0
  w.op(0x8a).op(9).raw(std::string("\x01\0\0\0\0\0\0\0\0", 9));   // 9 bytes, sign extension only
  w.op('l');
  w.stop();
  auto d = load(w.bytes());
  EXPECT_EQ(d->root().repr(), "[-1, 0, 1]");
  PickleWriter big;
  big.proto().op(0x8a).op(9).raw(std::string("\0\0\0\0\0\0\0\0\x01", 9)).stop();
  EXPECT_NE(error_of(big.bytes()).find("wider than 64 bits"), std::string::npos);
}

TEST(Unpickler, RefusesDangerousGlobals) {
  const std::pair<const char*, const char*> evil[] = {
      {"os", "system"}, {"posix", "system"}, {"builtins", "eval"}, {"builtins", "exec"}, {"__builtin__", "eval"},
      {"subprocess", "Popen"}, {"subprocess", "check_output"}, {"torch", "load"}, {"collections", "defaultdict"},
  };
  for (const auto& [m, n] : evil) {
    std::string name = std::string(m) + "." + n;
    PickleWriter w;
    w.proto().global(m, n).str("echo pwned").tuple_n(1).reduce().stop();
    std::string e = error_of(w.bytes());
    EXPECT_NE(e.find("refusing pickle global '" + name + "'"), std::string::npos) << e;
    // Also through STACK_GLOBAL, nested deep inside dicts and lists.
    PickleWriter deep;
    deep.proto().empty_dict().str("state_dict").empty_dict().str("layers").empty_list();
    deep.stack_global(m, n).str("rm -rf /").tuple_n(1).reduce().append().setitem().setitem().stop();
    e = error_of(deep.bytes());
    EXPECT_NE(e.find("refusing pickle global '" + name + "'"), std::string::npos) << e;
  }
}

TEST(Unpickler, GarbageAndStructuralErrors) {
  EXPECT_NE(error_of("").find("ends without STOP"), std::string::npos);
  EXPECT_NE(error_of("\x80\x02").find("ends without STOP"), std::string::npos);
  EXPECT_NE(error_of("\x80\x09.").find("protocol 9"), std::string::npos);
  EXPECT_NE(error_of("\xff").find("unsupported pickle opcode 0xff"), std::string::npos);
  EXPECT_NE(error_of("i").find("unsupported pickle opcode 0x69"), std::string::npos);  // INST
  EXPECT_NE(error_of(".").find("empty stack"), std::string::npos);
  EXPECT_NE(error_of("a.").find("empty stack"), std::string::npos);
  EXPECT_NE(error_of("h\x05.").find("memo entry 5"), std::string::npos);
  EXPECT_NE(error_of("NNa.").find("expected a list"), std::string::npos);
  EXPECT_NE(error_of("}(N").find("ends without STOP"), std::string::npos);
  EXPECT_NE(error_of("}(Nu.").find("odd number"), std::string::npos);
  EXPECT_NE(error_of("u.").find("MARK that was never set"), std::string::npos);
  EXPECT_NE(error_of("}]]s.").find("unhashable"), std::string::npos);
  EXPECT_NE(error_of(std::string("X\xff\x00\x00\x00", 5)).find("truncated"), std::string::npos);
  EXPECT_NE(error_of(std::string("X\xff\xff\xff\xff", 5)).find("exceeds the limit"), std::string::npos);
  EXPECT_NE(error_of(std::string("\x8d\xff\xff\xff\xff\xff\xff\xff\xff", 9)).find("exceeds the limit"),
            std::string::npos);
  EXPECT_EQ(error_of("NN."), "");  // leftover stack items are tolerated, as Python does
  EXPECT_NE(error_of("cos\nsystem").find("no end of line"), std::string::npos);
  EXPECT_NE(error_of("NNR.").find("not an allowed function"), std::string::npos);
  EXPECT_NE(error_of("ctorch\nFloatStorage\n)R.").find("storages come from persistent ids"), std::string::npos);
  EXPECT_NE(error_of("NQ.").find("persistent id"), std::string::npos);
}

TEST(Unpickler, RandomBytesNeverCrash) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = char(rng());
    if (trial % 2) s = "\x80\x02" + s;
    error_of(s);  // anything but a crash or a hang
  }
}

TEST(Unpickler, DeepNestingAndCycles) {
  // 200000 nested lists parse iteratively; walking them stops at the depth limit.
  std::string s = "\x80\x02" + std::string(200000, ']') + std::string(199999, 'a') + ".";
  auto d = load(s);
  EXPECT_LE(d->root().repr().size(), 210u);
  EXPECT_NE(error_of(s).find("nested deeper than"), std::string::npos);
  // A list that contains itself.
  EXPECT_NE(error_of("]2a.").find("contains itself"), std::string::npos);
  EXPECT_EQ(load("]2a.")->root().repr(20).size(), 23u);  // bounded rendering of the cycle
  // A dict key made of deeply nested tuples.
  EXPECT_NE(error_of("}N" + std::string(100000, '\x85') + "Ns.").find("nests tuples"), std::string::npos);
  // Too many marks or values for the limits.
  Limits small;
  small.max_stack = 1000;
  small.max_values = 1000;
  EXPECT_NE(error_of(std::string(5000, '('), small).find("stack deeper"), std::string::npos);
  EXPECT_NE(error_of(std::string(5000, 'N'), small).find("more than 1000 objects"), std::string::npos);
  // DUP-doubling lists: shared containers must not blow up the walk.
  std::string dag = "]";
  for (int i = 0; i < 40; ++i) dag += "2\x86";  // x → (x, x)
  dag += ".";
  EXPECT_NE(error_of(dag).find("too large to walk"), std::string::npos);
}

TEST(Unpickler, TensorViewsAreChecked) {
  auto doc_of = [](const std::vector<int64_t>& size, const std::vector<int64_t>& stride, int64_t offset,
                   int64_t numel) {
    PickleWriter w;
    w.proto().tensor("FloatStorage", "0", numel, offset, size, stride).stop();
    return w.bytes();
  };
  auto ok = load(doc_of({2, 3}, {3, 1}, 0, 6));
  ASSERT_EQ(ok->root().kind, Kind::Tensor);
  EXPECT_TRUE(ok->root().tensor.contiguous());
  EXPECT_EQ(ok->storages().size(), 1u);
  EXPECT_EQ(ok->storages()[0]->storage.numel, 6);
  EXPECT_FALSE(load(doc_of({3, 2}, {1, 3}, 0, 6))->root().tensor.contiguous());
  EXPECT_EQ(error_of(doc_of({}, {}, 5, 6)), "");      // 0-d scalar at the end of its storage
  EXPECT_EQ(error_of(doc_of({0, 4}, {4, 1}, 0, 0)), "");  // empty tensor, empty storage
  EXPECT_NE(error_of(doc_of({}, {}, 6, 6)).find("runs past its storage"), std::string::npos);
  EXPECT_NE(error_of(doc_of({2, 3}, {3, 1}, 1, 6)).find("runs past its storage"), std::string::npos);
  EXPECT_NE(error_of(doc_of({3, 2}, {1, 4}, 0, 6)).find("runs past its storage"), std::string::npos);
  EXPECT_NE(error_of(doc_of({2, 3}, {3}, 0, 6)).find("differ in length"), std::string::npos);
  EXPECT_NE(error_of(doc_of({int64_t(1) << 40, int64_t(1) << 40}, {0, 0}, 0, 1)).find("absurdly large"),
            std::string::npos);
  EXPECT_NE(error_of(doc_of({2}, {int64_t(1) << 62}, 0, 6)).find("runs past"), std::string::npos);
  EXPECT_NE(error_of(doc_of({2}, {1}, 0, int64_t(1) << 62)).find("absurd"), std::string::npos);
  // Negative sizes are refused (BININT -1).
  PickleWriter n2;
  n2.proto().global("torch._utils", "_rebuild_tensor_v2").mark().mark().str("storage").global("torch", "FloatStorage");
  n2.str("0").str("cpu").integer(6).tuple().binpersid().integer(0).integer(-1).tuple_n(1).integer(1).tuple_n(1);
  n2.boolean(false).empty_dict().tuple().reduce().stop();
  EXPECT_NE(error_of(n2.bytes()).find("negative"), std::string::npos);
}

TEST(Unpickler, StoragesAreSharedByKeyAndMustAgree) {
  PickleWriter w;
  w.proto().mark().tensor("HalfStorage", "k", 8, 0, {4}, {1}).tensor("HalfStorage", "k", 8, 4, {4}, {1});
  w.op('l').stop();
  auto d = load(w.bytes());
  ASSERT_EQ(d->storages().size(), 1u);
  EXPECT_EQ(d->storages()[0]->storage.dtype, DType::F16);
  EXPECT_EQ(d->root().items[0]->tensor.storage, d->root().items[1]->tensor.storage);
  PickleWriter bad;
  bad.proto().mark().tensor("HalfStorage", "k", 8, 0, {4}, {1}).tensor("FloatStorage", "k", 8, 0, {4}, {1});
  bad.op('l').stop();
  EXPECT_NE(error_of(bad.bytes()).find("referenced as both"), std::string::npos);
  PickleWriter path;
  path.proto().tensor("FloatStorage", "../x", 1, 0, {}, {}).stop();
  EXPECT_NE(error_of(path.bytes()).find("not a plain record name"), std::string::npos);
}

TEST(Unpickler, FlattensWithDottedNames) {
  PickleWriter w;
  w.proto().empty_dict();
  w.integer(320).empty_list().ordered_dict().str("linear.0.weight").tensor("FloatStorage", "0", 4, 0, {2, 2}, {2, 1});
  w.setitem().append().setitem();
  w.str("string_to_param").empty_dict().str("*").tensor("FloatStorage", "0", 4, 0, {4}, {1}).setitem().setitem();
  w.str("step").integer(3).setitem().stop();
  auto d = load(w.bytes());
  auto flat = flatten_tensors(d->root(), "<test>");
  ASSERT_EQ(flat.size(), 2u);
  EXPECT_EQ(flat[0].first, "320.0.linear.0.weight");
  EXPECT_EQ(flat[1].first, "string_to_param.*");
  // Two paths that spell the same name collide.
  PickleWriter c;
  c.proto().empty_dict().mark().str("a.b").tensor("FloatStorage", "0", 1, 0, {}, {});
  c.str("a").empty_dict().str("b").tensor("FloatStorage", "0", 1, 0, {}, {}).setitem().setitems().stop();
  EXPECT_NE(error_of(c.bytes()).find("both named 'a.b'"), std::string::npos);
}

TEST(Unpickler, InertLightningData) {
  // The callback state of a Lightning checkpoint: a numpy scalar built from _codecs.encode'd bytes, keyed by a
  // class reference. Kept as opaque data, never interpreted.
  PickleWriter w;
  w.proto().empty_dict().global("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint");
  w.global("numpy.core.multiarray", "scalar").global("numpy", "dtype").str("f8").boolean(false).boolean(true);
  w.tuple_n(3).reduce().mark().integer(3).str("<").none().none().none().integer(-1).integer(-1).integer(0);
  w.tuple().build().global("_codecs", "encode").str("\xc3\xbf\x01").str("latin1").tuple_n(2).reduce().tuple_n(2);
  w.reduce().setitem().stop();
  auto d = load(w.bytes());
  ASSERT_EQ(d->root().entries.size(), 1u);
  const Value* v = d->root().entries[0].second;
  EXPECT_EQ(v->kind, Kind::Opaque);
  EXPECT_EQ(v->items[1]->kind, Kind::Bytes);
  EXPECT_EQ(v->items[1]->s, std::string("\xff\x01"));
}

}  // namespace
}  // namespace pigment::pickle
