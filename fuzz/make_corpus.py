#!/usr/bin/env python3
"""Writes the seed corpora under corpus/<target>/ (small files; standard library only).

Usage: python3 fuzz/make_corpus.py GOLDEN_DIR   (GOLDEN_DIR = ../shared/golden)
Seeds: data.pkl of the golden .pt files, small safetensors, the malformed inputs of tests/data/io, and a few
hand-built pickles. pytorch_zip_fuzz inputs start with a mode byte (0: raw zip, 1: pickle to wrap).
"""
import glob, hashlib, io, os, struct, sys, zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
MALFORMED = os.path.join(HERE, "..", "tests", "data", "io", "malformed")


def put(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def s(text):
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def tensor(key, storage, numel, offset, size, stride):
    t = b"ctorch._utils\n_rebuild_tensor_v2\n((" + s("storage") + b"ctorch\n" + storage + b"\n" + s(key) + s("cpu")
    t += b"K" + bytes([numel]) + b"tQK" + bytes([offset])
    t += b"(" + b"".join(b"K" + bytes([x]) for x in size) + b"t(" + b"".join(b"K" + bytes([x]) for x in stride) + b"t"
    return t + b"\x89ccollections\nOrderedDict\n)RtR"


def main():
    golden = sys.argv[1]
    for pt in sorted(glob.glob(os.path.join(golden, "**", "*.pt"), recursive=True)):
        raw = open(pt, "rb").read()
        z = zipfile.ZipFile(pt)
        pkl = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
        put("unpickler_fuzz", pkl)
        if len(raw) < 4096:
            put("pytorch_zip_fuzz", b"\x00" + raw)
    hand = [
        b"\x80\x02}q\x00(" + s("state_dict") + b"}(" + s("w") + tensor("0", b"FloatStorage", 16, 0, [4, 4], [4, 1]) +
        s("t") + tensor("0", b"FloatStorage", 16, 1, [3, 2], [1, 4]) + b"u" + s("global_step") + b"M\x10\x27u.",
        b"\x80\x02]q\x00(" + tensor("1", b"HalfStorage", 4, 0, [], []) + tensor("2", b"FloatStorage", 0, 0, [0, 3], [3, 1]) +
        tensor("3", b"ByteStorage", 3, 0, [3], [1]) + b"e.",
        b"\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00" + s("collections") + s("OrderedDict") + b"\x93)R\x94" +
        s("a") + b"G?\xf0\x00\x00\x00\x00\x00\x00s.",
        b"\x80\x02}(K cos\nsystem\nX\x02\x00\x00\x00ls\x85Ru.",
    ]
    for h in hand:
        put("unpickler_fuzz", h)
        put("pytorch_zip_fuzz", b"\x01" + h)
    for st in sorted(glob.glob(os.path.join(golden, "**", "*.safetensors"), recursive=True)):
        if os.path.getsize(st) < 4096:
            put("safetensors_fuzz", open(st, "rb").read())
    header = b'{"__metadata__":{"format":"pt"},"a":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[],"data_offsets":[8,16]}}'
    put("safetensors_fuzz", struct.pack("<Q", len(header)) + header + bytes(16))
    for f in sorted(glob.glob(os.path.join(MALFORMED, "*"))):
        data = open(f, "rb").read()
        if len(data) > 4096:
            continue
        if f.endswith(".safetensors"):
            put("safetensors_fuzz", data)
        else:
            put("pytorch_zip_fuzz", b"\x00" + data)


if __name__ == "__main__":
    main()
