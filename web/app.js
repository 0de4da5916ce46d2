// pigment's web page: a client of the server's own AUTOMATIC1111 API (/sdapi/v1), nothing else. No build step.
import { adjustEmphasis } from "./emphasis.js";
import { MaskPainter } from "./mask.js";

const $ = (id) => document.getElementById(id);
const API = "sdapi/v1/";

// ---- talking to the server ----------------------------------------------------------------------------------------

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) {
    let detail = data && data.detail !== undefined ? data.detail : `HTTP ${res.status}`;
    if (Array.isArray(detail)) {
      detail = detail.map((d) => `${(d.loc || []).slice(-1)[0] || ""}: ${d.msg || JSON.stringify(d)}`).join("; ");
    } else if (typeof detail !== "string") detail = JSON.stringify(detail);
    const err = new Error(detail);
    err.status = res.status;
    throw err;
  }
  return data;
}

const bare64 = (dataUrl) => dataUrl.slice(dataUrl.indexOf(",") + 1);

function b64ToBlob(b64, type = "image/png") {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; ++i) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type });
}

function fileToDataUrl(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(new Error(`cannot read ${file.name}`));
    r.readAsDataURL(file);
  });
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the file is not an image this browser can read"));
    img.src = src;
  });
}

// ---- messages -----------------------------------------------------------------------------------------------------

function say(text, kind = "") {
  const m = $("message");
  m.textContent = text;
  m.className = "message" + (kind ? " " + kind : "");
  m.setAttribute("role", kind === "error" ? "alert" : "status");
}

function setServerStatus(text) { $("server-status").textContent = text; }

// ---- options of the form ------------------------------------------------------------------------------------------

function fillSelect(select, items, { value = (x) => x, label = (x) => x, keepFirst = false } = {}) {
  const first = keepFirst ? select.options[0] : null;
  select.replaceChildren();
  if (first) select.append(first);
  for (const it of items) {
    const o = document.createElement("option");
    o.value = value(it);
    o.textContent = label(it);
    select.append(o);
  }
}

async function loadLists() {
  const [samplers, schedulers, models, options, loras, embeddings, hypernets, cn, latentModes, upscalers] =
    await Promise.allSettled([
      api(API + "samplers"), api(API + "schedulers"), api(API + "sd-models"), api(API + "options"),
      api(API + "loras"), api(API + "embeddings"), api(API + "hypernetworks"), api("controlnet/model_list"),
      api(API + "latent-upscale-modes"), api(API + "upscalers"),
    ]);
  const ok = (r, fallback) => (r.status === "fulfilled" && r.value ? r.value : fallback);
  fillSelect($("sampler"), ok(samplers, [{ name: "Euler a" }]).map((s) => s.name));
  const sched = ok(schedulers, [{ label: "Automatic" }]).map((s) => s.label);
  fillSelect($("scheduler"), sched);
  if (ok(samplers, []).some((s) => s.name === "DPM++ 2M")) $("sampler").value = "DPM++ 2M";
  if (sched.includes("Karras")) $("scheduler").value = "Karras";

  // The hires fix's upscalers as A1111 lists them: the latent modes, then the image upscalers.
  fillSelect($("hr_upscaler"), [...ok(latentModes, [{ name: "Latent" }]), ...ok(upscalers, [])].map((u) => u.name));
  $("hr_upscaler").value = "Latent";

  const modelList = ok(models, []);
  fillSelect($("model"), modelList, { value: (m) => m.title, label: (m) => m.model_name });
  const current = ok(options, {}).sd_model_checkpoint;
  if (current) {
    if (!modelList.some((m) => m.title === current)) fillSelect($("model"), [current], { keepFirst: false });
    $("model").value = current;
  }
  fillSelect($("lora-pick"), ok(loras, []).map((l) => l.name), { keepFirst: true });
  fillSelect($("embedding-pick"), Object.keys(ok(embeddings, { loaded: {} }).loaded || {}).sort(), { keepFirst: true });
  fillSelect($("hypernet-pick"), ok(hypernets, []).map((h) => h.name), { keepFirst: true });
  const cnModels = ok(cn, { model_list: [] }).model_list || [];
  fillSelect($("cn-model"), cnModels);
  $("cn-enabled").disabled = cnModels.length === 0;
  if (!cnModels.length) $("cn-model").append(new Option("none in --control-net-dir", ""));
  const failed = [samplers, models, options].filter((r) => r.status === "rejected");
  setServerStatus(failed.length ? "server unreachable" : "ready");
  if (failed.length) say(`Cannot reach the server: ${failed[0].reason.message}`, "error");
}

function insertAtCursor(textarea, snippet) {
  const { selectionStart: s, selectionEnd: e, value } = textarea;
  const before = value.slice(0, s);
  const pad = before && !/[\s,(]$/.test(before) ? " " : "";
  textarea.value = before + pad + snippet + value.slice(e);
  const pos = s + pad.length + snippet.length;
  textarea.focus();
  textarea.setSelectionRange(pos, pos);
}

function wireNetworkPickers() {
  const add = (pick, tag) => $(pick + "-add").addEventListener("click", () => {
    const name = $(pick + "-pick").value;
    if (!name) { say("Pick one from the list first.", "error"); $(pick + "-pick").focus(); return; }
    insertAtCursor($("prompt"), tag(name));
  });
  add("lora", (n) => `<lora:${n}:1>`);
  add("embedding", (n) => n);
  add("hypernet", (n) => `<hypernet:${n}:1>`);
}

// ---- mode, img2img source, mask -------------------------------------------------------------------------------------

const mode = () => document.querySelector('input[name="mode"]:checked').value;
let initImage = null;  // data URL
let painter = null;

function applyMode() {
  document.body.dataset.mode = mode();
  if (painter) painter.setEnabled(mode() === "inpaint");
}

async function setInitImage(dataUrl) {
  const img = await loadImage(dataUrl);
  initImage = dataUrl;
  const canvas = $("init-canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  canvas.getContext("2d").drawImage(img, 0, 0);
  painter.resize(img.naturalWidth, img.naturalHeight);
  $("canvas-wrap").hidden = false;
}

// ---- ControlNet ---------------------------------------------------------------------------------------------------

let controlImage = null;  // data URL
let detectTimer = 0;

async function updateCannyPreview() {
  if (!controlImage) return;
  $("cn-previews").hidden = false;
  $("cn-source").src = controlImage;
  const canny = $("cn-module").value === "canny";
  document.body.dataset.cnModule = $("cn-module").value;
  if (!canny) {
    $("cn-map").src = controlImage;
    $("cn-map-caption").textContent = "Used as it is";
    return;
  }
  $("cn-map-caption").textContent = "Canny preview";
  try {
    const r = await api("controlnet/detect", {
      controlnet_module: "canny",
      controlnet_input_images: [bare64(controlImage)],
      controlnet_threshold_a: Number($("cn-low").value),
      controlnet_threshold_b: Number($("cn-high").value),
    });
    $("cn-map").src = "data:image/png;base64," + r.images[0];
  } catch (e) {
    say(`Canny preview: ${e.message}`, "error");
  }
}

function scheduleCannyPreview() {
  clearTimeout(detectTimer);
  detectTimer = setTimeout(updateCannyPreview, 250);
}

// ---- the request --------------------------------------------------------------------------------------------------

const int = (id) => Number.parseInt($(id).value, 10);
const num = (id) => Number($(id).value);

function buildRequest() {
  const body = {
    prompt: $("prompt").value,
    negative_prompt: $("negative_prompt").value,
    sampler_name: $("sampler").value,
    scheduler: $("scheduler").value,
    steps: int("steps"),
    cfg_scale: num("cfg_scale"),
    width: int("width"),
    height: int("height"),
    seed: Number.isFinite(int("seed")) ? int("seed") : -1,
    n_iter: int("n_iter"),
    batch_size: int("batch_size"),
    send_images: true,
    save_images: false,
    // CLIP skip is a setting in A1111, sent per request as an override.
    override_settings: { CLIP_stop_at_last_layers: Number.isFinite(int("clip_skip")) ? int("clip_skip") : 1 },
    override_settings_restore_afterwards: true,
  };
  let endpoint = "txt2img";
  if (mode() === "txt2img" && $("enable_hr").checked) {
    body.enable_hr = true;
    body.hr_scale = num("hr_scale");
    body.hr_upscaler = $("hr_upscaler").value;
    body.hr_second_pass_steps = int("hr_second_pass_steps") || 0;
    body.denoising_strength = num("hr_denoising_strength");  // txt2img's denoising strength is the hires pass's
  }
  if (mode() !== "txt2img") {
    if (!initImage) throw new Error("Choose a source image first (Source image → Image file).");
    endpoint = "img2img";
    body.init_images = [bare64(initImage)];
    body.denoising_strength = num("denoising_strength");
    body.resize_mode = int("resize_mode");
    if (mode() === "inpaint") {
      if (painter.isEmpty()) throw new Error("Paint the area to regenerate on the source image first (or invert the empty mask).");
      body.mask = bare64(painter.toMaskDataUrl());
      body.mask_blur = int("mask_blur");
      body.inpainting_fill = int("inpainting_fill");
      body.inpaint_full_res = $("inpaint_full_res").value === "true";
      body.inpaint_full_res_padding = int("inpaint_full_res_padding");
    }
  }
  if ($("cn-enabled").checked) {
    if (!controlImage) throw new Error("Choose a control image for ControlNet first.");
    body.alwayson_scripts = {
      controlnet: {
        args: [{
          enabled: true,
          input_image: bare64(controlImage),
          module: $("cn-module").value,
          model: $("cn-model").value,
          weight: num("cn-weight"),
          guidance_start: num("cn-start"),
          guidance_end: num("cn-end"),
          resize_mode: $("cn-resize").value,
          control_mode: 0,
          threshold_a: num("cn-low"),
          threshold_b: num("cn-high"),
        }],
      },
    };
  }
  return { endpoint, body };
}

// ---- progress -----------------------------------------------------------------------------------------------------

let polling = 0;
let busy = false;

function formatSeconds(s) {
  if (!(s > 0) || !Number.isFinite(s)) return "";
  return s < 60 ? `${Math.ceil(s)} s left` : `${Math.floor(s / 60)} min ${Math.ceil(s % 60)} s left`;
}

async function pollProgress() {
  try {
    const p = await api(API + "progress");
    if (!busy) return;
    const st = p.state || {};
    const pct = Math.round((p.progress || 0) * 100);
    $("progress-fill").style.width = pct + "%";
    $("progress").setAttribute("aria-valuenow", String(pct));
    let text;
    if (!st.job) text = st.queued ? `waiting in the queue (${st.queued})` : "waiting…";
    else {
      text = `step ${st.sampling_step}/${st.sampling_steps}`;
      if (st.job_count > 1) text = `image ${st.job_no + 1}/${st.job_count} · ` + text;
      const eta = formatSeconds(p.eta_relative);
      text += ` · ${pct}%` + (eta ? ` · ${eta}` : "");
    }
    $("progress-text").textContent = text;
    $("progress").setAttribute("aria-valuetext", text);
    if (p.current_image) {
      const img = $("stage-image");
      img.src = "data:image/png;base64," + p.current_image;
      img.alt = "Preview of the picture being made";
      img.hidden = false;
      img.classList.add("preview");
      $("stage-empty").hidden = true;
    }
  } catch { /* the next poll will tell */ }
}

function setBusy(on) {
  busy = on;
  $("generate").disabled = on;
  $("generate").textContent = on ? "Generating…" : "Generate";
  $("interrupt").disabled = !on;
  $("skip").disabled = !on;
  $("progress-row").hidden = !on;
  $("stage").setAttribute("aria-busy", String(on));
  document.querySelector(".output").setAttribute("aria-busy", String(on));
  setServerStatus(on ? "generating" : "ready");
  clearInterval(polling);
  if (on) {
    // Bring the progress and the preview into view: the top of the result column on a wide screen (it scrolls on
    // its own), the result itself below the settings on a narrow one.
    const out = document.querySelector(".output");
    if (getComputedStyle(out).position === "sticky") out.scrollTo({ top: 0 });
    else $("progress-row").scrollIntoView({ block: "start" });
    $("progress-fill").style.width = "0%";
    $("progress-text").textContent = "starting…";
    polling = setInterval(pollProgress, 400);
  }
}

// ---- results and the gallery --------------------------------------------------------------------------------------

const results = [];  // {url, b64, infotext, seed, width, height, n}
let selected = -1;
let lastSeed = null;

function showResult(index) {
  const r = results[index];
  if (!r) return;
  selected = index;
  const img = $("stage-image");
  img.classList.remove("preview");
  img.src = r.url;
  img.alt = `Picture ${r.n}: ${r.prompt || "no prompt"}`;
  img.hidden = false;
  $("stage-empty").hidden = true;
  $("result-meta").hidden = false;
  $("recipe").textContent = r.infotext;
  const dl = $("download");
  dl.href = r.url;
  dl.download = `pigment-${String(r.n).padStart(4, "0")}-${r.seed}.png`;
  for (const li of $("gallery").children) {
    const b = li.querySelector("button");
    b.setAttribute("aria-current", String(Number(li.dataset.index) === index));
  }
}

function addResult(b64, infotext, seed, prompt) {
  const url = URL.createObjectURL(b64ToBlob(b64));
  const n = results.length + 1;
  results.push({ url, b64, infotext, seed, prompt, n });
  const li = document.createElement("li");
  li.dataset.index = String(n - 1);
  const b = document.createElement("button");
  b.type = "button";
  b.className = "thumb";
  b.setAttribute("aria-label", `Show picture ${n}, seed ${seed}`);
  b.title = infotext;
  const img = document.createElement("img");
  img.src = url;
  img.alt = "";
  img.decoding = "async";
  b.append(img);
  b.addEventListener("click", () => showResult(n - 1));
  li.append(b);
  $("gallery").prepend(li);
  $("gallery-count").textContent = `(${results.length})`;
  return n - 1;
}

async function generate() {
  if (busy) return;
  let req;
  try { req = buildRequest(); } catch (e) { say(e.message, "error"); return; }
  setBusy(true);
  say("");
  const started = performance.now();
  try {
    const r = await api(API + req.endpoint, req.body);
    const info = typeof r.info === "string" ? JSON.parse(r.info) : r.info || {};
    const texts = info.infotexts || [];
    const seeds = info.all_seeds || [];
    let first = -1;
    r.images.forEach((b64, i) => {
      const idx = addResult(b64, texts[i] || "", seeds[i] ?? info.seed, (info.all_prompts || [])[i] ?? req.body.prompt);
      if (first < 0) first = idx;
    });
    if (info.seed !== undefined) {
      lastSeed = info.seed;
      $("seed-reuse").disabled = false;
      $("seed-reuse").title = `Seed ${lastSeed}`;
    }
    if (first >= 0) showResult(first);
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    const n = r.images.length;
    say(`${n} picture${n === 1 ? "" : "s"} in ${secs} s.` + (info.warnings && info.warnings.length ? " " + info.warnings.join(" ") : ""));
  } catch (e) {
    say(e.status ? `The server refused: ${e.message}` : `Failed: ${e.message}`, "error");
    if (selected >= 0) showResult(selected);
    else { $("stage-image").hidden = true; $("stage-empty").hidden = false; }
  } finally {
    setBusy(false);
  }
}

// ---- recipes (PNG info) -------------------------------------------------------------------------------------------

function setSelectValue(select, value) {
  if (value === undefined || value === null || value === "") return false;
  const found = [...select.options].some((o) => o.value === value);
  if (found) select.value = value;
  return found;
}

function applyParameters(p) {
  const set = (id, v) => { if (v !== undefined && v !== null && v !== "") $(id).value = v; };
  $("prompt").value = p.Prompt ?? "";
  $("negative_prompt").value = p["Negative prompt"] ?? "";
  set("steps", p.Steps);
  set("cfg_scale", p["CFG scale"]);
  set("seed", p.Seed);
  set("width", p["Size-1"]);
  set("height", p["Size-2"]);
  $("clip_skip").value = p["Clip skip"] || "1";  // the infotext names it only when above 1
  const hires = ["Hires upscale", "Hires upscaler", "Hires steps", "Hires resize-1"].some((k) => p[k] !== undefined);
  $("enable_hr").checked = hires;
  if (hires) {
    set("hr_scale", p["Hires upscale"]);
    setSelectValue($("hr_upscaler"), p["Hires upscaler"]);
    $("hr_second_pass_steps").value = p["Hires steps"] || "0";
    set("hr_denoising_strength", p["Denoising strength"]);  // a hires recipe's strength is its second pass's
    $("hires-panel").open = true;
  } else {
    set("denoising_strength", p["Denoising strength"]);
  }
  let sampler = p.Sampler;
  let schedule = p["Schedule type"];
  if (sampler && !setSelectValue($("sampler"), sampler)) {
    // Older A1111 infotexts name the schedule inside the sampler: "DPM++ 2M Karras".
    for (const o of $("scheduler").options) {
      if (o.value !== "Automatic" && sampler.endsWith(" " + o.value)) {
        schedule = schedule || o.value;
        setSelectValue($("sampler"), sampler.slice(0, -o.value.length - 1));
        break;
      }
    }
  }
  if (!setSelectValue($("scheduler"), schedule) && !schedule) setSelectValue($("scheduler"), "Automatic");
  const model = p.Model;
  const missing = [];
  if (model && ![...$("model").options].some((o) => o.textContent === model || o.value.startsWith(model + " ")))
    missing.push(`model “${model}” is not on this server`);
  if (p["Hires resize-1"] !== undefined)
    missing.push(`its hires resize to ${p["Hires resize-1"]}x${p["Hires resize-2"]} (this page sets a scale)`);
  return missing;
}

async function restoreFromPng(file) {
  if (!file) return;
  if (file.type && file.type !== "image/png") {
    say(`${file.name} is not a PNG; only PNGs carry their settings.`, "error");
    return;
  }
  try {
    const dataUrl = await fileToDataUrl(file);
    const r = await api(API + "png-info", { image: bare64(dataUrl) });
    if (!r.info) { say(`${file.name} carries no generation settings.`, "error"); return; }
    const notes = applyParameters(r.parameters || {});
    say(`Settings restored from ${file.name}.` + (notes.length ? " Note: " + notes.join("; ") + "." : ""));
    $("prompt").focus();
  } catch (e) {
    say(`Cannot read the settings of ${file.name}: ${e.message}`, "error");
  }
}

function wireDrop() {
  const overlay = $("drop-overlay");
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && [...(e.dataTransfer.types || [])].includes("Files");
  window.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    depth++;
    overlay.hidden = false;
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) overlay.hidden = true;
  });
  window.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
  window.addEventListener("drop", (e) => {
    depth = 0;
    overlay.hidden = true;
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (!file) return;
    // Files dropped on the file pickers go to them; anywhere else a PNG's settings are restored.
    if (e.target instanceof HTMLInputElement && e.target.type === "file") return;
    e.preventDefault();
    restoreFromPng(file);
  });
}

// ---- keyboard -----------------------------------------------------------------------------------------------------

function wirePromptKeys(textarea) {
  textarea.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      e.preventDefault();
      generate();
      return;
    }
    if ((e.ctrlKey || e.metaKey) && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
      e.preventDefault();
      const r = adjustEmphasis(textarea.value, textarea.selectionStart, textarea.selectionEnd, e.key === "ArrowUp");
      if (r.text === textarea.value && r.start === textarea.selectionStart && r.end === textarea.selectionEnd) return;
      textarea.value = r.text;
      textarea.setSelectionRange(r.start, r.end);
      textarea.dispatchEvent(new Event("input", { bubbles: true }));
    }
  });
}

// ---- start --------------------------------------------------------------------------------------------------------

function init() {
  $("stage-image").addEventListener("load", (e) => e.target.classList.toggle("small", e.target.naturalWidth < 192));
  painter = new MaskPainter($("mask-canvas"), $("brush-size"));
  document.querySelectorAll('input[name="mode"]').forEach((r) => r.addEventListener("change", applyMode));
  applyMode();
  $("form").addEventListener("submit", (e) => { e.preventDefault(); generate(); });
  $("interrupt").addEventListener("click", async () => {
    try { await api(API + "interrupt", {}); say("Interrupting…"); } catch (e) { say(e.message, "error"); }
  });
  $("skip").addEventListener("click", async () => {
    try { await api(API + "skip", {}); say("Skipping this picture…"); } catch (e) { say(e.message, "error"); }
  });
  for (const id of ["hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_denoising_strength"])
    $(id).addEventListener("change", () => { $("enable_hr").checked = true; });
  $("seed-random").addEventListener("click", () => { $("seed").value = "-1"; });
  $("seed-reuse").addEventListener("click", () => { if (lastSeed !== null) $("seed").value = String(lastSeed); });
  $("swap-size").addEventListener("click", () => {
    const w = $("width").value;
    $("width").value = $("height").value;
    $("height").value = w;
  });
  wirePromptKeys($("prompt"));
  wirePromptKeys($("negative_prompt"));
  wireNetworkPickers();
  $("init-file").addEventListener("change", async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    try { await setInitImage(await fileToDataUrl(f)); } catch (err) { say(err.message, "error"); }
  });
  $("mask-erase").addEventListener("click", () => {
    const on = $("mask-erase").getAttribute("aria-pressed") !== "true";
    $("mask-erase").setAttribute("aria-pressed", String(on));
    painter.erasing = on;
  });
  $("mask-invert").addEventListener("click", () => painter.invert());
  $("mask-clear").addEventListener("click", () => painter.clear());
  $("cn-file").addEventListener("change", async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    try {
      const url = await fileToDataUrl(f);
      await loadImage(url);
      controlImage = url;
      if ($("cn-model").value) $("cn-enabled").checked = true;
      updateCannyPreview();
    } catch (err) { say(err.message, "error"); }
  });
  for (const id of ["cn-module", "cn-low", "cn-high"]) $(id).addEventListener("input", scheduleCannyPreview);
  document.body.dataset.cnModule = $("cn-module").value;
  $("recipe-file").addEventListener("change", (e) => restoreFromPng(e.target.files[0]));
  $("use-recipe").addEventListener("click", async () => {
    const r = results[selected];
    if (!r) return;
    await restoreFromPng(new File([b64ToBlob(r.b64)], `picture ${r.n}`, { type: "image/png" }));
  });
  $("use-seed").addEventListener("click", () => {
    const r = results[selected];
    if (r) { $("seed").value = String(r.seed); say(`Seed ${r.seed} set.`); }
  });
  $("to-img2img").addEventListener("click", async () => {
    const r = results[selected];
    if (!r) return;
    $("mode-img2img").checked = true;
    applyMode();
    await setInitImage("data:image/png;base64," + r.b64);
    $("init-panel").scrollIntoView({ behavior: "smooth", block: "start" });
    say(`Picture ${r.n} is the source image now.`);
  });
  $("model").addEventListener("change", async () => {
    const title = $("model").value;
    $("model").disabled = true;
    setServerStatus("loading model");
    say(`Loading ${title}…`);
    try {
      await api(API + "options", { sd_model_checkpoint: title });
      say(`${title} is loaded.`);
    } catch (e) {
      say(`Cannot switch the model: ${e.message}`, "error");
    } finally {
      $("model").disabled = false;
      setServerStatus(busy ? "generating" : "ready");
    }
  });
  wireDrop();
  loadLists();
}

init();
