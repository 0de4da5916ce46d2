"""pigment serve's API over loopback with the tiny golden SD1: every endpoint, round trips (txt2img -> png-info ->
the same recipe; the same seed gives the CLI's image; img2img with a mask; progress moves and shows a preview;
interrupt stops a job; switching models), each bad input answered with its status code, HTTP Basic auth, the
timeout, and SIGTERM answering queued jobs and exiting 0.

usage: api_test.py PIGMENT TMPDIR GOLDEN_DIR -- MODEL_ARGS..."""
import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client import Checks, Server, b64, png_pixels, png_text, solid_png  # noqa: E402

pigment, tmp, golden = sys.argv[1], sys.argv[2], sys.argv[3]
lora = golden + "/lora/kohya/lora_kohya.safetensors"
model_args = sys.argv[sys.argv.index("--") + 1:]
model = model_args[model_args.index("-m") + 1]
model_flags = [a for i, a in enumerate(model_args) if a != "-m" and (i == 0 or model_args[i - 1] != "-m")]
c = Checks()

os.makedirs(tmp + "/loras")
shutil.copy(lora, tmp + "/loras/tiny.safetensors")
os.makedirs(tmp + "/models")
os.symlink(os.path.abspath(model), tmp + "/models/other.safetensors")
os.makedirs(tmp + "/cn")
os.symlink(os.path.abspath(os.path.join(os.path.dirname(model), "controlnet")), tmp + "/cn/tiny_canny")
os.makedirs(tmp + "/web")
with open(tmp + "/web/index.html", "w") as f:
    f.write("<!doctype html><title>pigment</title>")
s = Server(pigment, model_args + ["--lora-dir", tmp + "/loras", "--model-dir", tmp + "/models", "--max-steps", "40",
                                  "--max-pixels", str(256 * 256), "--max-body-mb", "1", "--embedding-dir", golden + "/ti/embeddings",
                                  "--hypernetwork-dir", golden + "/hypernetwork/a1111", "--control-net-dir",
                                  tmp + "/cn", "--web-dir", tmp + "/web"], tmp + "/server.log")

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    environ = open("/proc/%d/environ" % s.proc.pid, "rb").read().split(b"\0")
    c.check("the server runs with libgomp's short spin (core/threading.h)", b"GOMP_SPINCOUNT=1000" in environ)

# --- listings -----------------------------------------------------------------------------------------------------
st, samplers = s.get("/sdapi/v1/samplers")
c.check("samplers lists Euler a and DPM++ 2M", st == 200 and {"Euler a", "DPM++ 2M"} <= {x["name"] for x in samplers})
st, scheds = s.get("/sdapi/v1/schedulers")
c.check("schedulers lists Karras with its label", st == 200 and any(x["label"] == "Karras" for x in scheds), scheds)
st, ups = s.get("/sdapi/v1/upscalers")
c.check("upscalers", st == 200 and "Lanczos" in [u["name"] for u in ups])
st, modes = s.get("/sdapi/v1/latent-upscale-modes")
c.check("latent-upscale-modes", st == 200 and "Latent" in [m["name"] for m in modes])
st, models = s.get("/sdapi/v1/sd-models")
titles = [m["title"] for m in models] if st == 200 else []
c.check("sd-models lists -m and --model-dir", st == 200 and len(models) == 2 and
        {"sd1_single_file", "other"} == {m["model_name"] for m in models}, models)
st, opts = s.get("/sdapi/v1/options")
c.check("options names the loaded model", st == 200 and opts["sd_model_checkpoint"].startswith("sd1_single_file"), opts)
c.check("the loaded model's title carries its hash", st == 200 and opts["sd_model_checkpoint"].endswith("]"))
st, loras = s.get("/sdapi/v1/loras")
c.check("loras lists --lora-dir", st == 200 and [x["name"] for x in loras] == ["tiny"], loras)
st, emb = s.get("/sdapi/v1/embeddings")
c.check("embeddings lists --embedding-dir", st == 200 and {"my-concept", "other-style"} <= set(emb["loaded"]) and
        emb["loaded"]["my-concept"]["vectors"] >= 1, emb)
st, hn = s.get("/sdapi/v1/hypernetworks")
c.check("hypernetworks lists --hypernetwork-dir", st == 200 and [x["name"] for x in hn] == ["tiny_hypernet"], hn)
st, mem = s.get("/sdapi/v1/memory")
c.check("memory reports the process's RAM", st == 200 and mem["ram"]["used"] > 0 and mem["ram"]["total"] > 0, mem)
st, flags = s.get("/sdapi/v1/cmd-flags")
c.check("cmd-flags", st == 200 and flags["lora_dir"] == tmp + "/loras" and flags["api_auth"] is None, flags)
st, p = s.get("/sdapi/v1/progress")
c.check("progress when idle", st == 200 and p["progress"] == 0 and p["state"]["job"] == "" and
        p["current_image"] is None, p)
st, cn = s.get("/controlnet/model_list")
c.check("controlnet/model_list lists --control-net-dir", st == 200 and cn == {"model_list": ["tiny_canny"]}, cn)
st, ml = s.get("/controlnet/module_list")
c.check("controlnet/module_list names none and canny", st == 200 and ml == {"module_list": ["none", "canny"]}, ml)
# The extension's preprocessor preview (the web page's canny preview): a dark square on white has edges around it.
square = solid_png(32, 32, lambda x, y: (20, 20, 20) if 8 <= x < 24 and 8 <= y < 24 else (240, 240, 240))
st, det = s.post("/controlnet/detect", {"controlnet_module": "canny", "controlnet_input_images": [b64(square)]})
ok = c.check("controlnet/detect canny answers one map", st == 200 and len(det["images"]) == 1, det)
if ok:
    w, h, raw = png_pixels(base64.b64decode(det["images"][0]))
    rows, prev, stride = [], bytearray(3 * w), 3 * w  # PNG's row filters undone (8-bit RGB)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a, b, cc = (line[i - 3] if i >= 3 else 0), prev[i], (prev[i - 3] if i >= 3 else 0)
            pa, pb, pc = abs(b - cc), abs(a - cc), abs(a + b - 2 * cc)  # Paeth
            pr = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            line[i] = (line[i] + [0, a, b, (a + b) // 2, pr][f]) & 255
        rows.append(line)
        prev = line
    rgb = [rows[y][3 * x] for y in range(h) for x in range(w)]
    c.check("  ... black and white, edges on the square's border only", (w, h) == (32, 32) and set(rgb) == {0, 255} and
            rgb[16 * w + 16] == 0 and rgb[2 * w + 2] == 0 and max(rgb[8 * w + 6: 8 * w + 10]) == 255)
st, det = s.post("/controlnet/detect", {"controlnet_module": "depth", "controlnet_input_images": [b64(square)]})
c.check("controlnet/detect: an unknown module is 422", st == 422 and "depth" in json.dumps(det), det)
st, det = s.post("/controlnet/detect", {"controlnet_module": "canny"})
c.check("controlnet/detect: no images is 422", st == 422, det)
st, det = s.post("/controlnet/detect", {"controlnet_module": "canny", "controlnet_input_images": ["bm90IGFuIGltYWdl"]})
c.check("controlnet/detect: bytes that are no image are 400", st == 400, det)
st, page = s.get("/")
c.check("GET / serves --web-dir's index.html", st == 200 and b"<title>pigment</title>" in page, page)
for r in ("refresh-checkpoints", "refresh-loras"):
    st, _ = s.post("/sdapi/v1/" + r)
    c.check(r, st == 200)

# --- txt2img, the CLI's image, png-info ---------------------------------------------------------------------------
req = {"prompt": "a (red:1.2) cat", "negative_prompt": "blurry", "steps": 3, "width": 64, "height": 32, "seed": 42,
       "sampler_name": "DPM++ 2M", "scheduler": "Karras", "cfg_scale": 7.5}
st, r = s.post("/sdapi/v1/txt2img", req)
ok = c.check("txt2img answers 200 with one image", st == 200 and len(r["images"]) == 1, r)
if ok:
    png = base64.b64decode(r["images"][0])
    info = json.loads(r["info"])
    w, h, pixels = png_pixels(png)
    c.check("  ... at the asked size", (w, h) == (64, 32))
    c.check("  ... info is A1111's JSON string", info["seed"] == 42 and info["all_seeds"] == [42] and
            info["width"] == 64 and info["sampler_name"] == "DPM++ 2M" and info["sd_model_name"] == "sd1_single_file",
            info)
    c.check("  ... the PNG's parameters are info.infotexts[0]", png_text(png).get("parameters") == info["infotexts"][0])
    c.check("  ... parameters echo the request with defaults", r["parameters"]["steps"] == 3 and
            r["parameters"]["n_iter"] == 1 and r["parameters"]["send_images"] is True)
    cli = tmp + "/cli.png"
    subprocess.run([pigment, "generate"] + model_args + ["-q", "-p", req["prompt"], "-n", "blurry", "--steps", "3",
                    "-W", "64", "-H", "32", "-s", "42", "--sampler", "DPM++ 2M", "--schedule", "Karras",
                    "--cfg-scale", "7.5", "-o", cli], check=True)
    cli_png = open(cli, "rb").read()
    c.check("the same seed gives the CLI's pixels", png_pixels(cli_png) == png_pixels(png))
    c.check("  ... and the CLI's parameters text", png_text(cli_png)["parameters"] == png_text(png)["parameters"],
            (png_text(cli_png)["parameters"], png_text(png)["parameters"]))
    st, pi = s.post("/sdapi/v1/png-info", {"image": r["images"][0]})
    c.check("png-info returns the recipe", st == 200 and pi["info"] == info["infotexts"][0] and
            pi["parameters"]["Steps"] == "3" and pi["parameters"]["Size-1"] == "64" and
            pi["parameters"]["Prompt"] == req["prompt"], pi)
    # The recipe back into txt2img (A1111's `infotext` field) makes the same image.
    st, again = s.post("/sdapi/v1/txt2img", {"infotext": pi["info"]})
    c.check("txt2img from png-info's infotext reproduces the pixels",
            st == 200 and png_pixels(base64.b64decode(again["images"][0]))[2] == pixels, again if st != 200 else "")

st, r = s.post("/sdapi/v1/txt2img", {"prompt": "a cat", "steps": 2, "width": 32, "height": 32, "seed": 7,
                                     "n_iter": 2, "batch_size": 2})
c.check("n_iter x batch_size images with consecutive seeds", st == 200 and len(r["images"]) == 4 and
        json.loads(r["info"])["all_seeds"] == [7, 8, 9, 10], r if st != 200 else json.loads(r["info"])["all_seeds"])
st, r = s.post("/sdapi/v1/txt2img", {"prompt": "a cat", "steps": 2, "width": 32, "height": 32, "seed": -1})
c.check("seed -1 picks one and reports it", st == 200 and json.loads(r["info"])["seed"] >= 0)
st, r = s.post("/sdapi/v1/txt2img", {"prompt": "a cat", "steps": 2, "width": 32, "height": 32, "seed": 1,
                                     "send_images": False})
c.check("send_images false", st == 200 and r["images"] == [])

# <lora:...> in the prompt
base = {"prompt": "a cat", "steps": 2, "width": 32, "height": 32, "seed": 3}
st, plain = s.post("/sdapi/v1/txt2img", base)
st2, tagged = s.post("/sdapi/v1/txt2img", dict(base, prompt="a cat <lora:tiny:0.8>"))
ok = st == 200 and st2 == 200
c.check("<lora:tiny:0.8> in an API prompt changes the image",
        ok and png_pixels(base64.b64decode(plain["images"][0])) != png_pixels(base64.b64decode(tagged["images"][0])),
        tagged if st2 != 200 else "")
c.check("  ... and the infotext has its hash", ok and "Lora hashes" in json.loads(tagged["info"])["infotexts"][0])
st, r = s.post("/sdapi/v1/txt2img", base)
c.check("  ... the next request without it is the plain image again",
        st == 200 and png_pixels(base64.b64decode(r["images"][0])) == png_pixels(base64.b64decode(plain["images"][0])))
st, r = s.post("/sdapi/v1/txt2img", dict(base, prompt="a cat <hypernet:tiny_hypernet:0.8>"))
c.check("<hypernet:...> in an API prompt changes the image", st == 200 and
        png_pixels(base64.b64decode(r["images"][0])) != png_pixels(base64.b64decode(plain["images"][0])), r)
st, r = s.post("/sdapi/v1/txt2img", dict(base, prompt="a photo of my-concept"))
c.check("an embedding by name in an API prompt (TI hashes in the infotext)", st == 200 and
        "TI hashes" in json.loads(r["info"])["infotexts"][0], r)
st, r = s.post("/sdapi/v1/txt2img", dict(base, prompt="a cat <lora:nosuch:1>"))
c.check("an unknown LoRA is 422", st == 422 and "nosuch" in json.dumps(r), r)

# --- img2img with a mask ------------------------------------------------------------------------------------------
init = b64(solid_png(64, 64, lambda x, y: (200, 40 + 2 * y, 30 + 3 * x)))
mask = b64(solid_png(64, 64, lambda x, y: (255, 255, 255) if x >= 32 else (0, 0, 0)))
i2i = {"prompt": "a cat", "init_images": [init], "mask": mask, "steps": 3, "width": 64, "height": 64, "seed": 5,
       "denoising_strength": 0.75, "inpaint_full_res": False, "inpainting_fill": 1}
st, r = s.post("/sdapi/v1/img2img", i2i)
ok = c.check("img2img with a mask", st == 200 and len(r["images"]) == 1, r)
if ok:
    out = base64.b64decode(r["images"][0])
    text = png_text(out)["parameters"]
    c.check("  ... infotext has the strength and mask blur", "Denoising strength: 0.75" in text and
            "Mask blur: 4" in text, text)
    c.check("  ... parameters echo drops the init images", r["parameters"]["init_images"] is None)
    st, inv = s.post("/sdapi/v1/img2img", dict(i2i, inpainting_mask_invert=1))
    c.check("  ... inpainting_mask_invert repaints the other half",
            st == 200 and png_pixels(base64.b64decode(inv["images"][0])) != png_pixels(out))
    w, h, px = png_pixels(out)
    # Outside the mask the init image is kept (up to the VAE's round trip): the left half stays near it.
    left_red = [px[1 + y * (1 + 3 * w) + 3 * x] for y in range(0, h, 4) for x in range(0, 24, 4)]
    c.check("  ... the unmasked half keeps the init image's colour", sum(left_red) / len(left_red) > 120,
            sum(left_red) / len(left_red))
st, r = s.post("/sdapi/v1/img2img", {"prompt": "x", "init_images": [init], "steps": 2, "width": 32, "height": 32,
                                     "resize_mode": 1, "seed": 1})
c.check("img2img without a mask, crop-and-resize", st == 200 and png_pixels(base64.b64decode(r["images"][0]))[:2] ==
        (32, 32))

# --- ControlNet through alwayson_scripts: the CLI's pixels and recipe ----------------------------------------------
edges = solid_png(64, 32, lambda x, y: (255, 255, 255) if (x // 8 + y // 8) % 2 else (0, 0, 0))
open(tmp + "/control.png", "wb").write(edges)
unit = {"enabled": True, "input_image": b64(edges), "module": "canny", "model": "tiny_canny [0123abcd]",
        "weight": 0.8, "guidance_start": 0.0, "guidance_end": 1.0, "resize_mode": "Crop and Resize", "control_mode": 0}
creq = {"prompt": "a cat", "steps": 3, "width": 64, "height": 32, "seed": 5, "sampler_name": "Euler",
        "alwayson_scripts": {"controlnet": {"args": [unit]}}}
st, r = s.post("/sdapi/v1/txt2img", creq)
ok = c.check("txt2img with a ControlNet unit (canny)", st == 200 and len(r["images"]) == 1, r)
if ok:
    png = base64.b64decode(r["images"][0])
    c.check("  ... the infotext records the unit", "ControlNet 0" in png_text(png)["parameters"])
    cli = tmp + "/cli_cn.png"
    subprocess.run([pigment, "generate"] + model_args + ["-q", "-p", "a cat", "--steps", "3", "-W", "64", "-H", "32",
                    "-s", "5", "--sampler", "Euler", "--cfg-scale", "7", "--control-net", tmp + "/cn/tiny_canny",
                    "--control-image", tmp + "/control.png", "--canny", "--control-strength", "0.8", "-o", cli],
                   check=True)
    cli_png = open(cli, "rb").read()
    c.check("  ... the CLI's pixels for the same unit", png_pixels(cli_png) == png_pixels(png))
    c.check("  ... and the CLI's recipe", png_text(cli_png)["parameters"] == png_text(png)["parameters"],
            (png_text(cli_png)["parameters"], png_text(png)["parameters"]))
    st, off = s.post("/sdapi/v1/txt2img", dict(creq, alwayson_scripts={"controlnet": {"args": [dict(unit, enabled=False)]}}))
    plain_req = {k: v for k, v in creq.items() if k != "alwayson_scripts"}
    st2, plain_cn = s.post("/sdapi/v1/txt2img", plain_req)
    off_px = png_pixels(base64.b64decode(off["images"][0])) if st == 200 else None
    c.check("  ... a disabled unit is the image without ControlNet", st == 200 and st2 == 200 and
            off_px == png_pixels(base64.b64decode(plain_cn["images"][0])) and off_px != png_pixels(png))
st, r = s.post("/sdapi/v1/txt2img", dict(creq, alwayson_scripts={"controlnet": {"args": [dict(unit, model="nosuch")]}}))
c.check("an unknown ControlNet model is 422", st == 422 and "nosuch" in json.dumps(r), r)

# --- progress with preview, interrupt -----------------------------------------------------------------------------
st, _ = s.post("/sdapi/v1/options", {"show_progress_every_n_steps": 1})
c.check("options POST", st == 200)
long_req = {"prompt": "a cat", "steps": 40, "width": 128, "height": 128, "seed": 11}
result = {}
t = threading.Thread(target=lambda: result.update(zip(("st", "r"), s.post("/sdapi/v1/txt2img", long_req))))
t.start()
seen, preview, skipped_preview = None, None, None
deadline = time.time() + 60
while time.time() < deadline and t.is_alive():
    st, p = s.get("/sdapi/v1/progress")
    if p["state"]["sampling_step"] >= 2 and p["current_image"]:
        seen, preview = p, p["current_image"]
        _, skipped_preview = s.get("/sdapi/v1/progress?skip_current_image=true")
        break
    time.sleep(0.05)
c.check("progress moves during a job", seen is not None and 0 < seen["progress"] < 1 and
        seen["state"]["job"] == "txt2img" and seen["state"]["sampling_steps"] == 40, seen)
c.check("  ... with a live preview PNG", preview is not None and png_pixels(base64.b64decode(preview))[:2] == (128, 128))
c.check("  ... skip_current_image=true leaves it out", skipped_preview is not None and
        skipped_preview["current_image"] is None)
st, _ = s.post("/sdapi/v1/interrupt")
t0 = time.time()
t.join(60)
c.check("interrupt stops the job: it answers 200 with the image so far", result.get("st") == 200 and
        len(result["r"]["images"]) == 1, result)
st, p = s.get("/sdapi/v1/progress")
c.check("  ... and the server is idle again", p["state"]["job"] == "" and (seen is None or True))
if result.get("st") == 200:
    s.post("/sdapi/v1/options", {"show_progress_every_n_steps": 10})  # a preview per step costs a VAE decode each
    st, full = s.post("/sdapi/v1/txt2img", dict(long_req, steps=40))
    c.check("  ... the interrupted image is not the finished one", st == 200 and
            png_pixels(base64.b64decode(full["images"][0])) != png_pixels(base64.b64decode(result["r"]["images"][0])))
st, _ = s.post("/sdapi/v1/skip")
c.check("skip when idle answers 200", st == 200)

# --- OpenAI images API --------------------------------------------------------------------------------------------
st, r = s.post("/v1/images/generations", {"prompt": "a cat", "n": 2, "size": "64x64", "response_format": "b64_json",
                                          "seed": 5, "steps": 2})
c.check("POST /v1/images/generations", st == 200 and len(r["data"]) == 2 and
        png_pixels(base64.b64decode(r["data"][0]["b64_json"]))[:2] == (64, 64) and "created" in r, r)
st, r = s.post("/v1/images/generations", {"prompt": "a cat", "size": "64by64"})
c.check("  ... a bad size is 400 in OpenAI's error form", st == 400 and r["error"]["param"] == "size", r)
st, r = s.post("/v1/images/generations", {"n": 1})
c.check("  ... no prompt is 400", st == 400 and r["error"]["param"] == "prompt", r)

# --- model switching ----------------------------------------------------------------------------------------------
other = [m["title"] for m in models if m["model_name"] == "other"]
st, _ = s.post("/sdapi/v1/options", {"sd_model_checkpoint": "other"})
st2, opts = s.get("/sdapi/v1/options")
c.check("options POST sd_model_checkpoint switches the model", st == 200 and opts["sd_model_checkpoint"].startswith(
    "other.safetensors"), opts)
st, r = s.post("/sdapi/v1/txt2img", dict(base))
c.check("  ... and generates with it", st == 200 and json.loads(r["info"])["sd_model_name"] == "other")
st, r = s.post("/sdapi/v1/txt2img", dict(base, override_settings={"sd_model_checkpoint": "sd1_single_file"}))
st2, opts = s.get("/sdapi/v1/options")
c.check("override_settings.sd_model_checkpoint applies to the request and is restored", st == 200 and
        json.loads(r["info"])["sd_model_name"] == "sd1_single_file" and
        opts["sd_model_checkpoint"].startswith("other"), (r if st != 200 else "", opts))
rss0 = s.rss_kb()
for name in ("sd1_single_file", "other") * 3:
    s.post("/sdapi/v1/options", {"sd_model_checkpoint": name})
rss1 = s.rss_kb()
print("model switching: RSS %.1f MiB before 6 switches, %.1f MiB after" % (rss0 / 1024, rss1 / 1024))
c.check("  ... switching 6 times does not grow memory (< 16 MiB)", rss1 - rss0 < 16 * 1024, (rss0, rss1))
st, r = s.post("/sdapi/v1/options", {"sd_model_checkpoint": "nosuch"})
c.check("an unknown model is 422", st == 422 and r["detail"][0]["loc"] == ["body", "sd_model_checkpoint"], r)
s.post("/sdapi/v1/options", {"sd_model_checkpoint": "sd1_single_file"})

# --- bad input ----------------------------------------------------------------------------------------------------


def expect(name, status, resp, field=None):
    st, r = resp
    ok = st == status
    if ok and field is not None:
        ok = isinstance(r, dict) and isinstance(r.get("detail"), list) and r["detail"][0]["loc"] == ["body", field]
    if ok and status >= 400:
        ok = isinstance(r, dict) and ("detail" in r or "error" in r) and "\n" not in json.dumps(r)
    c.check("%s -> %d" % (name, status), ok, (st, r))


small = {"prompt": "x", "steps": 2, "width": 32, "height": 32}
expect("malformed JSON", 400, s.request("POST", "/sdapi/v1/txt2img", raw=b'{"prompt": "x",'))
expect("a body that is no object", 400, s.request("POST", "/sdapi/v1/txt2img", raw=b'[1, 2]'))
expect("steps of the wrong type", 422, s.post("/sdapi/v1/txt2img", dict(small, steps="many")), "steps")
expect("steps 0", 422, s.post("/sdapi/v1/txt2img", dict(small, steps=0)), "steps")
expect("steps over --max-steps", 422, s.post("/sdapi/v1/txt2img", dict(small, steps=41)), "steps")
expect("width not a multiple of 8", 422, s.post("/sdapi/v1/txt2img", dict(small, width=65)), "width")
expect("size over --max-pixels", 422, s.post("/sdapi/v1/txt2img", dict(small, width=512, height=512)), "width")
expect("unknown sampler", 422, s.post("/sdapi/v1/txt2img", dict(small, sampler_name="Bogus 3000")), "sampler_name")
expect("unknown scheduler", 422, s.post("/sdapi/v1/txt2img", dict(small, scheduler="wobbly")), "scheduler")
expect("hires over --max-pixels", 422, s.post("/sdapi/v1/txt2img", dict(small, width=256, height=256,
                                                                          enable_hr=True)), "hr_scale")
expect("img2img without init_images", 404, s.post("/sdapi/v1/img2img", small))
expect("img2img with bad base64", 400, s.post("/sdapi/v1/img2img", dict(small, init_images=["not*base64!"])))
expect("img2img with an image that does not decode", 400,
       s.post("/sdapi/v1/img2img", dict(small, init_images=[b64(b"hello, not an image")])))
expect("a mask of another size", 422, s.post("/sdapi/v1/img2img", dict(
    small, init_images=[init], mask=b64(solid_png(32, 32, (255, 255, 255))))), "mask")
expect("restore_faces (unsupported)", 422, s.post("/sdapi/v1/txt2img", dict(small, restore_faces=True)),
       "restore_faces")
expect("an unknown always-on script", 422, s.post("/sdapi/v1/txt2img", dict(
    small, alwayson_scripts={"adetailer": {"args": [{"enabled": True}]}})), "alwayson_scripts")
expect("a ControlNet unit without an image", 422, s.post("/sdapi/v1/txt2img", dict(
    small, alwayson_scripts={"controlnet": {"args": [{"module": "canny", "model": "tiny_canny"}]}})), "alwayson_scripts")
expect("options: eta_noise_seed_delta 31337", 422, s.post("/sdapi/v1/options", {"eta_noise_seed_delta": 31337}),
       "eta_noise_seed_delta")
expect("png-info of a non-PNG", 400, s.post("/sdapi/v1/png-info", {"image": b64(b"GIF89a....")}))
expect("a body over --max-body-mb", 413, s.request("POST", "/sdapi/v1/txt2img",
                                                   raw=json.dumps({"prompt": "x" * (1 << 20 + 1)}).encode()))
expect("an unknown route", 404, s.get("/sdapi/v1/nosuch"))
st, r = s.post("/sdapi/v1/txt2img", small)
c.check("the server still serves after all that", st == 200)

code = s.terminate()
c.check("SIGTERM when idle exits 0", code == 0, code)

# --- a second server: auth, timeout, SIGTERM with queued jobs ------------------------------------------------------
# No -m: the default model (here $PIGMENT_MODEL, as apps/pigment/default_model.h looks for it).
env = dict(os.environ, PIGMENT_MODEL=model)
s2 = Server(pigment, model_flags + ["--api-auth", "alice:s3cret-pass,bob:other", "--max-queue", "4",
                                    "--cors-allow-origins", "http://localhost:3000"], tmp + "/server2.log", env=env)
st, r = s2.get("/sdapi/v1/options")
c.check("--api-auth: no credentials is 401", st == 401)
s2.auth = "alice:wrong"
st, r = s2.get("/sdapi/v1/progress")
c.check("--api-auth: a wrong password is 401", st == 401)
st, r = s2.get("/")
c.check("--api-auth: the page is protected too", st == 401)
s2.auth = "bob:other"
st, r = s2.get("/sdapi/v1/progress")
c.check("--api-auth: the second user's credentials work", st == 200)
st, r = s2.get("/sdapi/v1/options", headers={"Origin": "http://localhost:3000"})
c.check("without -m the default model is served", st == 200 and r["sd_model_checkpoint"].startswith("sd1_single_file"))
c.check("--cors-allow-origins: the origin is allowed",
        s2.last_headers.get("Access-Control-Allow-Origin") == "http://localhost:3000", s2.last_headers)
st, r = s2.request("OPTIONS", "/sdapi/v1/txt2img", headers={"Origin": "http://localhost:3000",
                                                             "Access-Control-Request-Method": "POST"})
c.check("  ... and a preflight is answered", st == 204 and "POST" in s2.last_headers.get("Access-Control-Allow-Methods", ""))
s2.auth = "alice:s3cret-pass"
results = []
# Jobs far longer than the test waits (SIGTERM stops the running one), so that one runs and two wait whatever the
# machine's speed: SIGTERM is sent once the progress shows exactly that.
threads = [threading.Thread(target=lambda: results.append(s2.post("/sdapi/v1/txt2img", {
    "prompt": "x", "steps": 150, "width": 256, "height": 256, "seed": 2}, timeout=120))) for _ in range(3)]
for th in threads:
    th.start()
    time.sleep(0.2)
deadline = time.time() + 60
while time.time() < deadline:
    st, p = s2.get("/sdapi/v1/progress")
    if p["state"]["sampling_step"] >= 1 and p["state"]["queued"] == 2:
        break
    time.sleep(0.05)
code = s2.terminate()
for th in threads:
    th.join(60)
statuses = sorted(st for st, _ in results)
c.check("SIGTERM with jobs: exit 0", code == 0, code)
c.check("  ... every request answered (running 200, queued 503)", len(results) == 3 and statuses[0] == 200 and
        statuses[1:] == [503, 503], statuses)
log = open(tmp + "/server2.log").read()
c.check("no credential in the log", "s3cret" not in log and "alice" not in log and "YWxpY2" not in log)
c.check("the log names requests", "GET /sdapi/v1/progress 401" in log, log[-500:])

# --- a third: --timeout ---------------------------------------------------------------------------------------------
s3 = Server(pigment, model_args + ["--timeout", "3"], tmp + "/server3.log")
t0 = time.time()
st, r = s3.post("/sdapi/v1/txt2img", {"prompt": "x", "steps": 150, "width": 256, "height": 256, "seed": 1})
c.check("--timeout: a job that runs too long is stopped with 504", st == 504 and "timeout" in r["detail"] and
        time.time() - t0 < 60, (st, r))
st, r = s3.post("/sdapi/v1/txt2img", {"prompt": "x", "steps": 1, "width": 32, "height": 32, "seed": 1})
c.check("  ... and the next one runs", st == 200, (st, r))
c.check("  ... SIGTERM exits 0", s3.terminate() == 0)
sys.exit(1 if c.fails else 0)
