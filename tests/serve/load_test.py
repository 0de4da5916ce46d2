"""A bounded load test of pigment serve on loopback with the tiny golden SD1: 8 concurrent clients x 25 txt2img
requests. Every response must be correct (the same seed gives the same pixels as `pigment generate`), none lost;
then a burst beyond --max-queue is answered with 503; RSS before/after the 200 requests and the peak are printed,
then SIGTERM must exit 0.

usage: load_test.py PIGMENT TMPDIR -- MODEL_ARGS..."""
import base64
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client import Checks, Server, png_pixels  # noqa: E402

pigment, tmp = sys.argv[1], sys.argv[2]
model_args = sys.argv[sys.argv.index("--") + 1:]
CLIENTS, PER_CLIENT, SEEDS, SIZE, STEPS = 8, 25, 4, 32, 2
c = Checks()

# The CLI's pixels for seeds 100..103 (one process, -b 4).
subprocess.run([pigment, "generate"] + model_args + ["-q", "-p", "a red cat", "-W", str(SIZE), "-H", str(SIZE),
                "--steps", str(STEPS), "-s", "100", "-b", str(SEEDS), "--sampler", "Euler a", "-o", tmp + "/ref.png"],
               check=True)
ref = {}
for i in range(SEEDS):
    name = tmp + ("/ref.png" if i == 0 else "/ref-%d.png" % i)
    ref[100 + i] = png_pixels(open(name, "rb").read())

s = Server(pigment, model_args + ["--max-queue", str(CLIENTS), "-q"], tmp + "/server.log")


def req(seed, steps=STEPS, size=SIZE):
    return {"prompt": "a red cat", "steps": steps, "width": size, "height": size, "seed": seed,
            "sampler_name": "Euler a"}


st, _ = s.post("/sdapi/v1/txt2img", req(100))  # warm-up: prepared weights, first allocations
rss_before = s.rss_kb()
results, lock = [], threading.Lock()


def client(k):
    for j in range(PER_CLIENT):
        seed = 100 + (k + j) % SEEDS
        t0 = time.time()
        try:
            st, r = s.post("/sdapi/v1/txt2img", req(seed))
        except Exception as e:  # noqa: BLE001 - a lost request is a result too
            st, r = -1, str(e)
        with lock:
            results.append((seed, st, r, time.time() - t0))


t0 = time.time()
threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
for t in threads:
    t.start()
for t in threads:
    t.join(600)
wall = time.time() - t0
rss_after = s.rss_kb()
peak = s.rss_kb("VmHWM")

ok = [x for x in results if x[1] == 200]
c.check("%d requests, none lost" % (CLIENTS * PER_CLIENT), len(results) == CLIENTS * PER_CLIENT and
        len(ok) == len(results), sorted({x[1] for x in results}))
wrong = 0
for seed, st, r, _ in ok:
    if len(r["images"]) != 1 or png_pixels(base64.b64decode(r["images"][0])) != ref[seed]:
        wrong += 1
c.check("every image is the CLI's for its seed", wrong == 0, "%d wrong" % wrong)
lat = sorted(x[3] for x in results)
print("load: %d requests of %dx%d, %d steps, %d clients in %.1f s: %.0f requests/minute" %
      (len(results), SIZE, SIZE, STEPS, CLIENTS, wall, len(results) / wall * 60))
print("load: latency (queue wait + run) median %.2f s, p95 %.2f s, max %.2f s" %
      (statistics.median(lat), lat[int(0.95 * (len(lat) - 1))], lat[-1]))
print("load: RSS before %.1f MiB, after %.1f MiB, peak %.1f MiB" % (rss_before / 1024, rss_after / 1024, peak / 1024))
c.check("RSS stays flat across the run (after <= before + 64 MiB)", rss_after <= rss_before + 64 * 1024,
        (rss_before, rss_after))

# A burst beyond the queue: 2 x --max-queue slower requests at once; the excess is refused with 503, none lost.
burst = []


def one(i):
    try:
        burst.append(s.post("/sdapi/v1/txt2img", req(100 + i % SEEDS, steps=8, size=64)))
    except Exception as e:  # noqa: BLE001
        burst.append((-1, str(e)))


threads = [threading.Thread(target=one, args=(i,)) for i in range(2 * CLIENTS + 2)]
for t in threads:
    t.start()
for t in threads:
    t.join(300)
codes = [st for st, _ in burst]
full = [r for st, r in burst if st == 503]
c.check("a burst beyond --max-queue: every request answered", len(burst) == len(threads) and -1 not in codes, codes)
c.check("  ... the excess with 503 and a reason", len(full) > 0 and all("queue is full" in r["detail"] for r in full),
        codes)
c.check("  ... the rest with 200", codes.count(200) >= CLIENTS, codes)
code = s.terminate()
c.check("SIGTERM exits 0", code == 0, code)
sys.exit(1 if c.fails else 0)
