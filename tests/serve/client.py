"""A small client of `pigment serve` for its tests (python3 standard library only): starts a server on a free
loopback port, sends JSON requests, reads PNGs, counts checks."""
import base64
import http.client
import json
import os
import struct
import subprocess
import sys
import time
import zlib


class Server:
    """`pigment serve ARGS --listen 127.0.0.1:0`; the port comes from its first stdout line."""

    def __init__(self, pigment, args, log_path, env=None):
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([pigment, "serve", "--listen", "127.0.0.1:0"] + list(args),
                                     stdout=subprocess.PIPE, stderr=self.log, env=env)
        line = self.proc.stdout.readline().decode()
        if "listening on http://" not in line:
            self.proc.kill()
            raise SystemExit("server did not start: %r (log %s)" % (line, log_path))
        self.host, port = line.strip().rsplit("http://", 1)[1].rsplit(":", 1)
        self.port = int(port)
        self.auth = None

    def request(self, method, path, body=None, headers=None, raw=None, timeout=120):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        if self.auth:
            h["Authorization"] = "Basic " + base64.b64encode(self.auth.encode()).decode()
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        self.last_headers = dict(resp.getheaders())
        conn.close()
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload
        return resp.status, parsed

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body if body is not None else {}, **kw)

    def rss_kb(self, key="VmRSS"):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def terminate(self, timeout=60):
        """SIGTERM; the exit status (None if it did not exit in time, then killed)."""
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def png_pixels(png):
    """(width, height, raw decompressed IDAT bytes): same pixels, same bytes, whatever the text chunks say."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    i, idat, size = 8, b"", None
    while i < len(png):
        n, t = struct.unpack(">I4s", png[i:i + 8])
        if t == b"IHDR":
            size = struct.unpack(">II", png[i + 8:i + 16])
        if t == b"IDAT":
            idat += png[i + 8:i + 8 + n]
        i += 12 + n
    return size[0], size[1], zlib.decompress(idat)


def png_text(png):
    out, i = {}, 8
    while i < len(png):
        n, t = struct.unpack(">I4s", png[i:i + 8])
        d = png[i + 8:i + 8 + n]
        if t == b"tEXt":
            k, v = d.split(b"\0", 1)
            out[k.decode("latin-1")] = v.decode("latin-1")
        elif t == b"iTXt":
            k, rest = d.split(b"\0", 1)
            rest = rest[2:]
            _, rest = rest.split(b"\0", 1)
            _, v = rest.split(b"\0", 1)
            out[k.decode()] = v.decode()
        i += 12 + n
    return out


def solid_png(w, h, rgb):
    """An RGB PNG of one colour (or a function (x, y) -> (r, g, b))."""
    rows = b""
    for y in range(h):
        rows += b"\0" + b"".join(bytes(rgb(x, y) if callable(rgb) else rgb) for x in range(w))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def b64(data):
    return base64.b64encode(data).decode()


class Checks:
    def __init__(self):
        self.fails = 0

    def check(self, name, cond, detail=""):
        if cond:
            print("ok   " + name)
        else:
            print("FAIL " + name + ("  (" + str(detail)[:400] + ")" if detail != "" else ""))
            self.fails += 1
        sys.stdout.flush()
        return cond
