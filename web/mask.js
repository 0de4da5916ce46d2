// The inpainting mask: a canvas over the source image, painted with a round brush (mouse, pen or touch through
// pointer events). Painted pixels are opaque, the rest transparent; the server gets a black-and-white PNG of the
// same size as the source image (white = regenerate), as A1111's API expects its `mask`.
const PAINT = [60, 198, 208];  // how the mask is shown over the picture; only its alpha is sent

export class MaskPainter {
  constructor(canvas, sizeInput) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { willReadFrequently: true });
    this.sizeInput = sizeInput;
    this.erasing = false;
    this.enabled = false;
    this.drawing = false;
    this.last = null;
    this.painted = false;
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    for (const ev of ["pointerup", "pointercancel", "pointerleave"]) canvas.addEventListener(ev, () => this.up());
  }

  setEnabled(on) { this.enabled = on; }

  resize(w, h) {
    this.canvas.width = w;
    this.canvas.height = h;
    this.clear();
  }

  // Canvas pixels per CSS pixel: the canvas is shown scaled to the column's width.
  point(e) {
    const r = this.canvas.getBoundingClientRect();
    return { x: (e.clientX - r.left) * (this.canvas.width / r.width), y: (e.clientY - r.top) * (this.canvas.height / r.height) };
  }

  radius() {
    const r = this.canvas.getBoundingClientRect();
    return (Number(this.sizeInput.value) / 2) * (this.canvas.width / Math.max(r.width, 1));
  }

  stroke(from, to) {
    const c = this.ctx;
    c.save();
    c.globalCompositeOperation = this.erasing ? "destination-out" : "source-over";
    c.strokeStyle = c.fillStyle = `rgb(${PAINT.join(",")})`;
    c.lineCap = c.lineJoin = "round";
    c.lineWidth = this.radius() * 2;
    c.beginPath();
    c.moveTo(from.x, from.y);
    c.lineTo(to.x, to.y);
    c.stroke();
    c.beginPath();
    c.arc(to.x, to.y, this.radius(), 0, Math.PI * 2);
    c.fill();
    c.restore();
    if (!this.erasing) this.painted = true;
  }

  down(e) {
    if (!this.enabled || e.button > 0) return;
    e.preventDefault();
    this.canvas.setPointerCapture(e.pointerId);
    this.drawing = true;
    this.last = this.point(e);
    this.stroke(this.last, this.last);
  }

  move(e) {
    if (!this.drawing) return;
    const p = this.point(e);
    this.stroke(this.last, p);
    this.last = p;
  }

  up() { this.drawing = false; }

  clear() {
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.painted = false;
  }

  invert() {
    const { width: w, height: h } = this.canvas;
    if (!w || !h) return;
    const img = this.ctx.getImageData(0, 0, w, h);
    const d = img.data;
    let any = false;
    for (let i = 0; i < d.length; i += 4) {
      const a = d[i + 3] > 127 ? 0 : 255;
      [d[i], d[i + 1], d[i + 2]] = PAINT;
      d[i + 3] = a;
      any = any || a > 0;
    }
    this.ctx.putImageData(img, 0, 0);
    this.painted = any;
  }

  isEmpty() {
    if (!this.painted) return true;
    const { width: w, height: h } = this.canvas;
    const d = this.ctx.getImageData(0, 0, w, h).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return false;
    return true;
  }

  toMaskDataUrl() {
    const { width: w, height: h } = this.canvas;
    const out = document.createElement("canvas");
    out.width = w;
    out.height = h;
    const src = this.ctx.getImageData(0, 0, w, h);
    const o = out.getContext("2d");
    const dst = o.createImageData(w, h);
    for (let i = 0; i < src.data.length; i += 4) {
      const v = src.data[i + 3] > 127 ? 255 : 0;
      dst.data[i] = dst.data[i + 1] = dst.data[i + 2] = v;
      dst.data[i + 3] = 255;
    }
    o.putImageData(dst, 0, 0);
    return out.toDataURL("image/png");
  }
}
