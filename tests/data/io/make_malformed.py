#!/usr/bin/env python3
"""Writes the malformed checkpoints in malformed/ (standard library only; nothing here is ever unpickled).

tests/cli/malformed.sh feeds each of them to `pigment inspect` and expects one error line and exit status 1.
Run from this folder: python3 make_malformed.py PATH_TO/my-concept.pt
"""
import io, os, random, struct, sys, zipfile

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "malformed")


def s(text):  # BINUNICODE
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def tensor(key, numel, offset, size, stride, storage="FloatStorage"):
    t = b"ctorch._utils\n_rebuild_tensor_v2\n("
    t += b"(" + s("storage") + b"ctorch\n" + storage.encode() + b"\n" + s(key) + s("cpu") + b"J" + struct.pack("<i", numel) + b"tQ"
    t += b"J" + struct.pack("<i", offset)
    t += b"(" + b"".join(b"J" + struct.pack("<i", x) for x in size) + b"t"
    t += b"(" + b"".join(b"J" + struct.pack("<i", x) for x in stride) + b"t"
    t += b"\x89}tR"
    return t


def torch_zip(name, pickle_bytes, storages=(), method=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        for key, data in storages:
            z.writestr("archive/data/" + key, data)
        z.writestr("archive/version", b"3\n")
    write(name, buf.getvalue())


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    floats = struct.pack("<6f", 0, 1, 2, 3, 4, 5)
    # Code execution attempts: at the top, and nested inside the state dict.
    torch_zip("os_system.pt", b"\x80\x02}(" + s("x") + b"cos\nsystem\n" + s("echo pwned") + b"\x85Ru.")
    torch_zip("nested_eval.ckpt", b"\x80\x02}(" + s("state_dict") + b"}(" + s("w") + b"}(" + s("v") +
              b"cbuiltins\neval\n" + s("1+1") + b"\x85Ruuu.")
    torch_zip("subprocess.pt", b"\x80\x02" + s("subprocess") + s("Popen") + b"\x93" + s("ls") + b"\x85R.")
    # Structure problems.
    write("no_data_pkl.pt", zip_bytes({"archive/version": b"3\n"}))
    torch_zip("short_storage.pt", b"\x80\x02}(" + s("w") + tensor("0", 6, 0, [6], [1]) + b"u.", [("0", floats[:12])])
    torch_zip("missing_storage.pt", b"\x80\x02}(" + s("w") + tensor("7", 6, 0, [6], [1]) + b"u.", [("0", floats)])
    torch_zip("view_past_storage.pt", b"\x80\x02}(" + s("w") + tensor("0", 6, 4, [2, 2], [2, 1]) + b"u.",
              [("0", floats)])
    torch_zip("absurd_size.pt", b"\x80\x02}(" + s("w") + tensor("0", 2**31 - 1, 0, [2**31 - 1], [1]) + b"u.",
              [("0", floats)])
    torch_zip("deep_nesting.pt", b"\x80\x02" + b"]" * 100000 + b"a" * 99999 + b".", method=zipfile.ZIP_DEFLATED)
    torch_zip("garbage_opcode.pt", b"\x80\x02}(\xfe.")
    torch_zip("no_stop.pt", b"\x80\x02}(" + s("w"))
    write("legacy.pt", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.")
    random.seed(7)
    write("garbage.bin", bytes(random.randrange(256) for _ in range(300)))
    write("empty.safetensors", b"")
    write("huge_header.safetensors", struct.pack("<Q", 2**40) + b"{}")
    header = b'{"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]}}'
    write("truncated.safetensors", struct.pack("<Q", len(header)) + header + floats[:10])
    if len(sys.argv) > 1:
        with open(sys.argv[1], "rb") as f:
            good = f.read()
        write("truncated.pt", good[: len(good) // 2])


def zip_bytes(records):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for k, v in records.items():
            z.writestr(k, v)
    return buf.getvalue()


if __name__ == "__main__":
    main()
