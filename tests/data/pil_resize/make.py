#!/usr/bin/python3
"""Reference outputs of Pillow for pigment's imaging tests (src/imaging/pil_reference_test.cc).

Run with Debian's python3-pil (`apt-get install python3-pil`; the outputs committed were made with Pillow 9.4):
    /usr/bin/python3 tests/data/pil_resize/make.py
It writes small PNG inputs, Pillow's resizes, Gaussian blurs, A1111-style resize modes and A1111's "fill" of them,
and cases.txt, one line per output:
    resize  INPUT FILTER W H X0 Y0 X1 Y1 OUTPUT   (Image.resize((W, H), FILTER, box=(X0, Y0, X1, Y1)))
    blur    INPUT RADIUS OUTPUT                   (Image.filter(ImageFilter.GaussianBlur(RADIUS)))
    a1111   INPUT MODE W H OUTPUT                 (A1111's images.resize_image(MODE, ...) with Lanczos)
    fill    INPUT MASK OUTPUT                     (A1111's masking.fill(image, mask))
The C++ test compares each output with pigment's bit for bit; it needs no Python.
"""
import os

from PIL import Image, ImageFilter, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def lcg(seed):
    state = seed
    while True:
        state = (state * 1103515245 + 12345) % (1 << 31)
        yield state >> 16


def test_image(mode, w, h, seed):
    """Noise over gradients with a hard-edged block: rings and clipping show up in every filter."""
    rnd = lcg(seed)
    bands = len(mode)
    data = []
    for y in range(h):
        for x in range(w):
            block = w // 3 <= x < 2 * w // 3 and h // 3 <= y < 2 * h // 3
            px = []
            for b in range(bands):
                base = (x * 255 // max(1, w - 1) + y * 97 // max(1, h - 1) + 60 * b) % 256
                v = 255 if block and b != 1 else min(255, max(0, base + next(rnd) % 61 - 30))
                if mode == "RGBA" and b == 3:
                    v = 0 if (x + y) % 5 == 0 else (255 if x < w // 2 else 40 + 20 * (y % 8))
                px.append(v)
            data.append(tuple(px) if bands > 1 else px[0])
    im = Image.new(mode, (w, h))
    im.putdata(data)
    return im


def a1111_resize(im, mode, width, height):
    """A1111's images.resize_image with its default upscaler (Lanczos), written from its documented behaviour."""
    def resize(img, w, h):
        return img.resize((w, h), resample=Image.Resampling.LANCZOS)

    if mode == 0:
        return resize(im, width, height)
    ratio, src_ratio = width / height, im.width / im.height
    if mode == 1:
        src_w = width if ratio > src_ratio else im.width * height // im.height
        src_h = height if ratio <= src_ratio else im.height * width // im.width
        resized = resize(im, src_w, src_h)
        res = Image.new(im.mode, (width, height))
        res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
        return res
    src_w = width if ratio < src_ratio else im.width * height // im.height
    src_h = height if ratio >= src_ratio else im.height * width // im.width
    resized = resize(im, src_w, src_h)
    res = Image.new(im.mode, (width, height))
    res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if ratio < src_ratio:
        fill_h = height // 2 - src_h // 2
        if fill_h > 0:
            res.paste(resized.resize((width, fill_h), box=(0, 0, width, 0)), box=(0, 0))
            res.paste(resized.resize((width, fill_h), box=(0, resized.height, width, resized.height)),
                      box=(0, fill_h + src_h))
    elif ratio > src_ratio:
        fill_w = width // 2 - src_w // 2
        if fill_w > 0:
            res.paste(resized.resize((fill_w, height), box=(0, 0, 0, height)), box=(0, 0))
            res.paste(resized.resize((fill_w, height), box=(resized.width, 0, resized.width, height)),
                      box=(fill_w + src_w, 0))
    return res


def a1111_fill(image, mask):
    """A1111's masking.fill: the unmasked part, premultiplied, blurred ever less and composited over itself."""
    out = Image.new("RGBA", image.size)
    masked = Image.new("RGBa", image.size)
    masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    masked = masked.convert("RGBa")
    for radius, repeats in [(256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)]:
        blurred = masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            out.alpha_composite(blurred)
    return out.convert("RGB")


def main():
    lines = []
    inputs = {
        "rgb13x11.png": test_image("RGB", 13, 11, 1),
        "l7x9.png": test_image("L", 7, 9, 2),
        "rgba10x6.png": test_image("RGBA", 10, 6, 3),
        "rgb40x24.png": test_image("RGB", 40, 24, 4),
    }
    for name, im in inputs.items():
        im.save(os.path.join(HERE, name))

    def resize(src, filt, w, h, box=None):
        im = inputs[src]
        box = box or (0, 0, im.width, im.height)
        out = im.resize((w, h), FILTERS[filt], box=box)
        stem = src[:-4]
        name = "%s_%s_%dx%d%s.png" % (stem, filt, w, h, "" if box == (0, 0, im.width, im.height) else
                                      "_box" + "_".join(str(v) for v in box))
        out.save(os.path.join(HERE, name))
        lines.append("resize %s %s %d %d %s %s %s %s %s" % ((src, filt, w, h) + tuple(str(v) for v in box) + (name,)))

    for filt in FILTERS:
        for w, h in [(5, 4), (29, 23), (13, 5), (20, 11), (3, 17)]:  # down, up, one axis only, mixed
            resize("rgb13x11.png", filt, w, h)
        for w, h in [(3, 4), (16, 19), (1, 1)]:
            resize("l7x9.png", filt, w, h)
        for w, h in [(4, 3), (21, 13)]:
            resize("rgba10x6.png", filt, w, h)
        resize("rgb40x24.png", filt, 7, 9)  # a large, uneven reduction
    # Boxes: a sub-region, and the empty boxes A1111's "resize and fill" stretches the borders with.
    for filt in ("bicubic", "lanczos", "bilinear", "nearest"):
        resize("rgb13x11.png", filt, 9, 7, (1.5, 2, 12, 10.25))
    resize("rgb13x11.png", "bicubic", 13, 4, (0, 0, 13, 0))
    resize("rgb13x11.png", "bicubic", 13, 4, (0, 11, 13, 11))
    resize("rgb13x11.png", "bicubic", 3, 11, (0, 0, 0, 11))
    resize("rgb13x11.png", "bicubic", 3, 11, (13, 0, 13, 11))

    for src in ("rgb13x11.png", "l7x9.png", "rgb40x24.png"):
        for radius in (0.5, 1, 2, 5, 40):
            out = inputs[src].filter(ImageFilter.GaussianBlur(radius))
            name = "%s_gauss%s.png" % (src[:-4], str(radius).replace(".", "p"))
            out.save(os.path.join(HERE, name))
            lines.append("blur %s %s %s" % (src, radius, name))

    for src, sizes in (("rgb13x11.png", [(8, 16), (24, 8), (26, 22), (6, 6)]), ("l7x9.png", [(16, 8), (5, 12)])):
        for mode in (0, 1, 2):
            for w, h in sizes:
                name = "%s_a1111mode%d_%dx%d.png" % (src[:-4], mode, w, h)
                a1111_resize(inputs[src], mode, w, h).save(os.path.join(HERE, name))
                lines.append("a1111 %s %d %d %d %s" % (src, mode, w, h, name))

    # "fill": a soft-edged mask (an ellipse with a ramp) over the 40x24 image.
    mask = Image.new("L", (40, 24))
    mask.putdata([max(0, min(255, int(255 * (1.6 - ((x - 22) / 10.0) ** 2 - ((y - 11) / 6.0) ** 2))))
                  for y in range(24) for x in range(40)])
    mask.save(os.path.join(HERE, "mask40x24.png"))
    a1111_fill(inputs["rgb40x24.png"], mask).save(os.path.join(HERE, "rgb40x24_fill.png"))
    lines.append("fill rgb40x24.png mask40x24.png rgb40x24_fill.png")

    with open(os.path.join(HERE, "cases.txt"), "w") as f:
        f.write("# Written by make.py with Pillow %s; one reference output per line.\n" % Image.__version__)
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
