// pigment serve's web page in a real browser: Debian's Chromium, headless, driven by Playwright's library
// (playwright-core, which never downloads a browser). Starts `pigment serve` with the tiny golden SD1 on a free
// loopback port and uses the page as a person would: types a prompt, generates, reads the parameters, drops the PNG
// back, interrupts a long job, paints an inpainting mask, previews Canny for ControlNet, generates with the keyboard
// only, and looks at it at phone width. Screenshots go to SHOT_DIR.
//
// usage: node page_test.mjs PIGMENT CHROMIUM TMPDIR GOLDEN_DIR WEB_DIR SHOT_DIR -- MODEL_ARGS...
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { chromium } from "playwright-core";

const argv = process.argv.slice(2);
const [pigment, browserPath, tmp, golden, webDir, shotDir] = argv;
const modelArgs = argv.slice(argv.indexOf("--") + 1);
const started = Date.now();
let fails = 0;
let checks = 0;

function check(name, cond, detail) {
  checks++;
  if (cond) console.log(`ok   ${name}`);
  else {
    fails++;
    console.log(`FAIL ${name}` + (detail !== undefined ? `  (${typeof detail === "string" ? detail : JSON.stringify(detail)})` : ""));
  }
  return cond;
}

// ---- the server -----------------------------------------------------------------------------------------------------
fs.mkdirSync(path.join(tmp, "loras"), { recursive: true });
fs.copyFileSync(path.join(golden, "lora/kohya/lora_kohya.safetensors"), path.join(tmp, "loras/tiny.safetensors"));
fs.mkdirSync(path.join(tmp, "cn"), { recursive: true });
const model = modelArgs[modelArgs.indexOf("-m") + 1];
fs.symlinkSync(path.resolve(path.dirname(model), "controlnet"), path.join(tmp, "cn/tiny_canny"));
fs.mkdirSync(shotDir, { recursive: true });
for (const f of fs.readdirSync(shotDir)) if (f.endsWith(".png")) fs.unlinkSync(path.join(shotDir, f));

const log = fs.openSync(path.join(tmp, "server.log"), "w");
const server = spawn(pigment, ["serve", "--listen", "127.0.0.1:0", "--web-dir", webDir, "--lora-dir", path.join(tmp, "loras"),
  "--embedding-dir", path.join(golden, "ti/embeddings"), "--hypernetwork-dir", path.join(golden, "hypernetwork/a1111"),
  "--control-net-dir", path.join(tmp, "cn"), "--max-steps", "1000", ...modelArgs], { stdio: ["ignore", "pipe", log] });
const guard = setTimeout(() => { console.log("FAIL the test ran past 170 s"); server.kill("SIGKILL"); process.exit(1); }, 170000);
const base = await new Promise((resolve, reject) => {
  const rl = readline.createInterface({ input: server.stdout });
  rl.once("line", (line) => {
    const m = /listening on (http:\/\/\S+)/.exec(line);
    m ? resolve(m[1] + "/") : reject(new Error("server did not start: " + line));
  });
  server.once("exit", (code) => reject(new Error(`server exited with ${code} (log ${tmp}/server.log)`)));
});
console.log(`server at ${base}`);

const browser = await chromium.launch({ executablePath: browserPath, headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
const pageErrors = [];

async function openPage(viewport) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1, colorScheme: "light" });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  // The deliberately refused request below is logged by the browser as a failed load; any other error counts.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 422/.test(m.text())) pageErrors.push(m.text());
  });
  await page.goto(base);
  await page.waitForFunction(() => document.getElementById("sampler").options.length > 1, null, { timeout: 15000 });
  return page;
}

const galleryCount = (page) => page.locator("#gallery li").count();
async function waitForResults(page, n, timeout = 30000) {
  await page.waitForFunction((k) => document.querySelectorAll("#gallery li").length >= k && !document.getElementById("generate").disabled,
    n, { timeout });
}
async function settle(page) {  // fields filled, then generate
  await page.waitForFunction(() => !document.getElementById("generate").disabled);
}
// What the window shows (sticky parts where a person sees them), after scrolling `to` into view (a selector).
async function shot(page, name, to) {
  await page.evaluate(() => document.querySelector(".output").scrollTo(0, 0));
  if (to) await page.locator(to).evaluate((el) => el.scrollIntoView({ block: "start" }));
  else await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(250);  // transitions (the panels' arrows, the progress bar) come to rest
  await page.screenshot({ path: path.join(shotDir, name + ".png") });
}

try {
  // ---- load, lists, labels ------------------------------------------------------------------------------------
  const page = await openPage({ width: 1280, height: 860 });
  check("the page loads with its title", (await page.title()) === "pigment");
  const samplers = await page.$$eval("#sampler option", (os) => os.map((o) => o.value));
  check("samplers come from /sdapi/v1/samplers", samplers.includes("Euler a") && samplers.includes("DPM++ 2M"), samplers);
  const schedules = await page.$$eval("#scheduler option", (os) => os.map((o) => o.value));
  check("schedules come from /sdapi/v1/schedulers", schedules.includes("Karras"), schedules);
  check("the loaded model is selected", (await page.locator("#model option:checked").textContent()) === "sd1_single_file");
  check("the LoRA picker lists --lora-dir", (await page.$$eval("#lora-pick option", (os) => os.map((o) => o.value))).includes("tiny"));
  check("the embedding picker lists --embedding-dir",
    (await page.$$eval("#embedding-pick option", (os) => os.map((o) => o.value))).includes("my-concept"));
  check("the hypernetwork picker lists --hypernetwork-dir",
    (await page.$$eval("#hypernet-pick option", (os) => os.map((o) => o.value))).includes("tiny_hypernet"));
  check("the ControlNet model list comes from the server",
    (await page.$$eval("#cn-model option", (os) => os.map((o) => o.value))).includes("tiny_canny"));
  const unlabelled = await page.evaluate(() => {
    const out = [];
    for (const el of document.querySelectorAll("input, select, textarea, button, a[href], canvas[aria-label], pre[tabindex]")) {
      const name = (el.labels && el.labels.length && [...el.labels].map((l) => l.textContent.trim()).join(" ")) ||
        el.getAttribute("aria-label") || (el.getAttribute("aria-labelledby") && document.getElementById(el.getAttribute("aria-labelledby"))?.textContent) ||
        ((el.tagName === "BUTTON" || el.tagName === "A") && el.textContent.trim());
      if (!name) out.push(el.id || el.outerHTML.slice(0, 60));
    }
    return out;
  });
  check("every control has a name for screen readers (label or aria-label)", unlabelled.length === 0, unlabelled);

  // ---- A1111 emphasis keys and the pickers ------------------------------------------------------------------------
  const prompt = page.locator("#prompt");
  await prompt.fill("a red fox");
  await prompt.evaluate((t) => t.setSelectionRange(2, 5));  // "red"
  await page.keyboard.press("Control+ArrowUp");
  check("Ctrl+Up wraps the selection as (red:1.1)", (await prompt.inputValue()) === "a (red:1.1) fox", await prompt.inputValue());
  await page.keyboard.press("Control+ArrowUp");
  check("Ctrl+Up again: (red:1.2)", (await prompt.inputValue()) === "a (red:1.2) fox", await prompt.inputValue());
  await page.keyboard.press("Control+ArrowDown");
  await page.keyboard.press("Control+ArrowDown");
  check("Ctrl+Down twice: back to plain red", (await prompt.inputValue()) === "a red fox", await prompt.inputValue());
  await prompt.evaluate((t) => t.setSelectionRange(7, 7));  // cursor inside "fox", no selection
  await page.keyboard.press("Control+ArrowDown");
  check("Ctrl+Down with no selection weights the word: (fox:0.9)", (await prompt.inputValue()) === "a red (fox:0.9)", await prompt.inputValue());
  await prompt.evaluate((t) => t.setSelectionRange(t.value.length, t.value.length));
  await page.locator("#networks-panel summary").click();
  await page.selectOption("#lora-pick", "tiny");
  await page.click("#lora-add");
  check("the LoRA picker inserts <lora:tiny:1> at the cursor", (await prompt.inputValue()) === "a red (fox:0.9) <lora:tiny:1>",
    await prompt.inputValue());

  // ---- txt2img: generate, see the image and its parameters -------------------------------------------------------------
  await prompt.fill("a (red:1.2) fox in the snow");
  await page.fill("#negative_prompt", "blurry");
  await page.selectOption("#sampler", "Euler a");
  await page.selectOption("#scheduler", "Automatic");
  await page.fill("#steps", "4");
  await page.fill("#cfg_scale", "6.5");
  await page.fill("#width", "64");
  await page.fill("#height", "48");
  await page.fill("#seed", "4242");
  await page.fill("#batch_size", "2");
  await page.click("#generate");
  await waitForResults(page, 2);
  check("Generate makes batch size 2 pictures in the gallery", (await galleryCount(page)) === 2);
  const stage = await page.locator("#stage-image").evaluate((img) => ({ w: img.naturalWidth, h: img.naturalHeight, src: img.src, hidden: img.hidden }));
  check("the picture is shown at the asked size", !stage.hidden && stage.w === 64 && stage.h === 48, stage);
  const recipe = await page.locator("#recipe").textContent();
  check("its parameters are shown with it", recipe.startsWith("a (red:1.2) fox in the snow\nNegative prompt: blurry\n") &&
    recipe.includes("Steps: 4") && recipe.includes("Sampler: Euler a") && recipe.includes("CFG scale: 6.5") &&
    recipe.includes("Seed: 4242") && recipe.includes("Size: 64x48"), recipe);
  const dl = await page.locator("#download").evaluate((a) => ({ href: a.href, name: a.download }));
  check("Download links the PNG", dl.href.startsWith("blob:") && /^pigment-\d{4}-4242\.png$/.test(dl.name), dl);
  const download = await Promise.all([page.waitForEvent("download"), page.click("#download")]).then(([d]) => d);
  const dlPath = path.join(tmp, "downloaded.png");
  await download.saveAs(dlPath);
  const png = fs.readFileSync(dlPath);
  check("the downloaded file is the PNG with its parameters", png.subarray(1, 4).toString() === "PNG" &&
    png.includes(Buffer.from("parameters")) && png.includes(Buffer.from("Seed: 4242")));
  await page.locator("#gallery li").nth(0).locator("button").click();  // newest first: the second picture
  const second = await page.locator("#recipe").textContent();
  check("the gallery keeps each picture's recipe (second seed 4243)", second.includes("Seed: 4243"), second);
  await page.click("#seed-reuse");
  check("Reuse last seed puts the run's seed back", (await page.inputValue("#seed")) === "4242");
  await page.fill("#batch_size", "1");
  await page.locator("#networks-panel").evaluate((d) => { d.open = false; });
  await shot(page, "desktop-txt2img");

  // ---- dropping the PNG back restores its recipe ----------------------------------------------------------------------
  await prompt.fill("something else");
  await page.fill("#negative_prompt", "");
  await page.fill("#steps", "9");
  await page.fill("#seed", "1");
  await page.fill("#width", "128");
  await page.fill("#cfg_scale", "3");
  await page.selectOption("#sampler", "DPM++ 2M");
  const dataTransfer = await page.evaluateHandle((b64) => {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; ++i) bytes[i] = bin.charCodeAt(i);
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], "fox.png", { type: "image/png" }));
    return dt;
  }, png.toString("base64"));
  await page.dispatchEvent("body", "dragenter", { dataTransfer });
  check("dragging a file over the page shows the drop hint", await page.locator("#drop-overlay").isVisible());
  await shot(page, "drop-hint");
  await page.dispatchEvent("body", "drop", { dataTransfer });
  await page.waitForFunction(() => document.getElementById("prompt").value !== "something else", null, { timeout: 10000 });
  const restored = await page.evaluate(() => Object.fromEntries(
    ["prompt", "negative_prompt", "steps", "seed", "width", "height", "cfg_scale", "sampler", "scheduler"]
      .map((id) => [id, document.getElementById(id).value])));
  check("dropping the PNG restores every field of its recipe", restored.prompt === "a (red:1.2) fox in the snow" &&
    restored.negative_prompt === "blurry" && restored.steps === "4" && restored.seed === "4242" && restored.width === "64" &&
    restored.height === "48" && Number(restored.cfg_scale) === 6.5 && restored.sampler === "Euler a" &&
    restored.scheduler === "Automatic", restored);
  check("the drop hint goes away", !(await page.locator("#drop-overlay").isVisible()));
  await page.click("#generate");
  await waitForResults(page, 3);
  const again = await page.locator("#stage-image").evaluate(async (img) => {
    const b = await (await fetch(img.src)).arrayBuffer();
    return btoa(String.fromCharCode(...new Uint8Array(b)));
  });
  const againPng = Buffer.from(again, "base64");
  check("the restored recipe makes the same PNG again", againPng.equals(png), `${againPng.length} vs ${png.length} bytes`);

  // ---- hires fix and CLIP skip: sent as A1111's fields, seen in the returned infotext, restored from the PNG ------------
  await page.fill("#clip_skip", "2");
  await page.locator("#hires-panel summary").click();
  await page.fill("#hr_scale", "1.5");
  await page.locator("#hr_scale").dispatchEvent("change");
  check("changing a hires field turns the hires fix on", await page.locator("#enable_hr").isChecked());
  const upscalers = await page.$$eval("#hr_upscaler option", (os) => os.map((o) => o.value));
  check("the hires upscalers come from the server (latent modes and image upscalers)",
    upscalers.includes("Latent") && upscalers.includes("Latent (bicubic antialiased)") && upscalers.includes("Lanczos"), upscalers);
  await page.selectOption("#hr_upscaler", "Latent (nearest)");
  await page.fill("#hr_second_pass_steps", "2");
  await page.fill("#hr_denoising_strength", "0.6");
  await page.click("#generate");
  await waitForResults(page, 4);
  const hiresSize = await page.locator("#stage-image").evaluate((img) => [img.naturalWidth, img.naturalHeight]);
  check("the hires fix answers at 1.5 times the size", hiresSize[0] === 96 && hiresSize[1] === 72, hiresSize);
  const hiresRecipe = await page.locator("#recipe").textContent();
  check("its infotext has the hires fix and CLIP skip the page sent", hiresRecipe.includes("Size: 64x48") &&
    hiresRecipe.includes("Clip skip: 2") && hiresRecipe.includes("Hires upscale: 1.5") && hiresRecipe.includes("Hires steps: 2") &&
    hiresRecipe.includes("Hires upscaler: Latent (nearest)") && hiresRecipe.includes("Denoising strength: 0.6"), hiresRecipe);
  await shot(page, "desktop-hires", "#hires-panel");
  const hiresPng = await page.locator("#stage-image").evaluate(async (img) => {
    const b = await (await fetch(img.src)).arrayBuffer();
    return btoa(String.fromCharCode(...new Uint8Array(b)));
  });
  await page.fill("#clip_skip", "1");
  await page.uncheck("#enable_hr");
  await page.fill("#hr_scale", "2");
  const hiresDrop = await page.evaluateHandle((b64) => {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; ++i) bytes[i] = bin.charCodeAt(i);
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], "hires.png", { type: "image/png" }));
    return dt;
  }, hiresPng);
  await page.dispatchEvent("body", "drop", { dataTransfer: hiresDrop });
  await page.waitForFunction(() => document.getElementById("enable_hr").checked, null, { timeout: 10000 });
  const hiresFields = await page.evaluate(() => Object.fromEntries(
    ["clip_skip", "hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_denoising_strength", "denoising_strength"]
      .map((id) => [id, document.getElementById(id).value])));
  check("dropping the hires PNG restores the hires fix and CLIP skip", hiresFields.clip_skip === "2" &&
    Number(hiresFields.hr_scale) === 1.5 && hiresFields.hr_upscaler === "Latent (nearest)" &&
    hiresFields.hr_second_pass_steps === "2" && Number(hiresFields.hr_denoising_strength) === 0.6, hiresFields);
  check("  ... its denoising strength goes to the hires pass, not to image to image",
    Number(hiresFields.denoising_strength) === 0.75, hiresFields);
  await page.fill("#clip_skip", "1");
  await page.uncheck("#enable_hr");
  await page.locator("#hires-panel").evaluate((d) => { d.open = false; });

  // ---- a long job: live progress with a preview, then Interrupt ---------------------------------------------------
  await page.fill("#steps", "600");
  await page.fill("#width", "256");
  await page.fill("#height", "256");
  await page.fill("#seed", "5");
  const before = await galleryCount(page);
  await page.click("#generate");
  await page.waitForFunction(() => /step \d+\/600/.test(document.getElementById("progress-text").textContent) &&
    Number(/step (\d+)/.exec(document.getElementById("progress-text").textContent)[1]) >= 2, null, { timeout: 30000 });
  check("Interrupt and Skip are enabled while it runs", await page.locator("#interrupt").isEnabled() && await page.locator("#skip").isEnabled());
  const bar = Number(await page.locator("#progress").getAttribute("aria-valuenow"));
  check("the progress bar has a value for screen readers", bar >= 0 && bar < 100, bar);
  let sawPreview = true;
  try {
    await page.waitForFunction(() => document.getElementById("stage-image").classList.contains("preview"), null, { timeout: 15000 });
  } catch { sawPreview = false; }
  check("a live preview of the current latent is shown", sawPreview);
  await shot(page, "progress-preview", "#width");
  const stepAtInterrupt = Number(/step (\d+)/.exec(await page.locator("#progress-text").textContent())[1]);
  const t0 = Date.now();
  await page.click("#interrupt");
  await waitForResults(page, before + 1, 30000);
  const stopped = Date.now() - t0;
  check("Interrupt ends the job within seconds", stopped < 10000, `${stopped} ms after step ${stepAtInterrupt}`);
  const p = await page.evaluate(async () => (await fetch("sdapi/v1/progress")).json());
  check("  ... long before its 600 steps", p.state.interrupted === true || p.state.job === "", p.state);
  check("  ... the picture so far comes back", (await page.locator("#stage-image").evaluate((img) => img.naturalWidth)) === 256);
  check("Generate is enabled again", await page.locator("#generate").isEnabled());

  // ---- inpainting: a mask painted with the brush ------------------------------------------------------------------------
  await page.fill("#steps", "3");
  await page.fill("#width", "64");
  await page.fill("#height", "64");
  await page.click("label[for=mode-inpaint]");
  const source = await page.evaluate(() => {  // a picture with clear shapes: a disc on a bar
    const c = document.createElement("canvas");
    c.width = 64; c.height = 64;
    const g = c.getContext("2d");
    g.fillStyle = "#d8d2c4"; g.fillRect(0, 0, 64, 64);
    g.fillStyle = "#25606a"; g.fillRect(0, 40, 64, 12);
    g.fillStyle = "#c0503a"; g.beginPath(); g.arc(32, 24, 14, 0, Math.PI * 2); g.fill();
    return c.toDataURL("image/png").split(",")[1];
  });
  const sourcePng = Buffer.from(source, "base64");
  fs.writeFileSync(path.join(tmp, "source.png"), sourcePng);
  await page.setInputFiles("#init-file", path.join(tmp, "source.png"));
  await page.waitForFunction(() => !document.getElementById("canvas-wrap").hidden);
  await page.locator("#mask-canvas").scrollIntoViewIfNeeded();
  const box = await page.locator("#mask-canvas").boundingBox();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.3);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.7, box.y + box.height * 0.5, { steps: 8 });
  await page.mouse.up();
  const masked = await page.evaluate(() => {
    const c = document.getElementById("mask-canvas");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 127) n++;
    return { n, total: c.width * c.height };
  });
  check("the brush paints the mask", masked.n > 50 && masked.n < masked.total, masked);
  await page.click("#generate");
  await waitForResults(page, before + 2);
  const inpaintRecipe = await page.locator("#recipe").textContent();
  check("inpainting answers with a picture whose recipe has its denoising strength and mask blur",
    inpaintRecipe.includes("Denoising strength: 0.75") && inpaintRecipe.includes("Mask blur: 4"), inpaintRecipe);
  await shot(page, "desktop-inpaint", "#init-panel");
  await page.click("#mask-clear");
  await page.click("label[for=mode-txt2img]");

  // ---- ControlNet: upload, Canny preview, generate -------------------------------------------------------------------
  await page.locator("#cn-panel summary").click();
  await page.setInputFiles("#cn-file", path.join(tmp, "source.png"));
  await page.waitForFunction(() => document.getElementById("cn-map").src.startsWith("data:image/png"), null, { timeout: 10000 });
  const edges = await page.locator("#cn-map").evaluate(async (img) => {
    await img.decode();
    const c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let on = 0, other = 0;
    for (let i = 0; i < d.length; i += 4) { if (d[i] === 255) on++; else if (d[i] !== 0) other++; }
    return { on, other, w: c.width, h: c.height };
  });
  check("the Canny preview is an edge map of the control image (black and white, some edges)",
    edges.w === 64 && edges.on > 40 && edges.on < 64 * 64 / 3 && edges.other === 0, edges);
  check("choosing a control image turns ControlNet on", await page.locator("#cn-enabled").isChecked());
  await page.fill("#cn-high", "250");
  await page.waitForTimeout(600);
  await page.click("#generate");
  await waitForResults(page, before + 3);
  const cnRecipe = await page.locator("#recipe").textContent();
  check("a generation with ControlNet records its unit", /ControlNet 0: "Module: canny, Model: tiny_canny/.test(cnRecipe), cnRecipe);
  await shot(page, "desktop-controlnet", "#cn-panel");
  await page.uncheck("#cn-enabled");

  // ---- a bad request: the server's reason is shown ------------------------------------------------------------------
  await page.fill("#steps", "5000");
  await page.click("#generate");
  await page.waitForFunction(() => document.getElementById("message").classList.contains("error"), null, { timeout: 10000 });
  const msg = await page.locator("#message").textContent();
  check("a refused request shows the server's reason, naming the field", /steps/.test(msg), msg);
  check("  ... as an alert for screen readers", (await page.locator("#message").getAttribute("role")) === "alert");
  await page.context().close();

  // ---- keyboard only ----------------------------------------------------------------------------------------------------
  const kb = await openPage({ width: 1280, height: 860 });
  const focusedId = () => kb.evaluate(() => document.activeElement && (document.activeElement.id || document.activeElement.className));
  async function tabTo(id, limit = 80) {
    for (let i = 0; i < limit; ++i) {
      if ((await focusedId()) === id) return true;
      await kb.keyboard.press("Tab");
    }
    return (await focusedId()) === id;
  }
  await kb.keyboard.press("Tab");
  check("the first Tab reaches the skip link", (await focusedId()) === "skip-link");
  await kb.keyboard.press("Enter");
  check("the skip link moves the focus to the prompt", (await focusedId()) === "prompt");
  await kb.keyboard.type("a lighthouse at dusk");
  const reach = {};
  for (const [id, value] of [["steps", "3"], ["width", "64"], ["height", "64"], ["seed", "77"]]) {
    reach[id] = await tabTo(id);
    await kb.keyboard.press("Control+A");
    await kb.keyboard.type(value);
  }
  check("Tab reaches steps, width, height and seed in order", Object.values(reach).every(Boolean), reach);
  check("Tab reaches Generate", await tabTo("generate"));
  await kb.screenshot({ path: path.join(shotDir, "keyboard-focus.png") });
  await kb.keyboard.press("Enter");
  await waitForResults(kb, 1);
  const kbRecipe = await kb.locator("#recipe").textContent();
  check("a generation with the keyboard only", kbRecipe.startsWith("a lighthouse at dusk") && kbRecipe.includes("Seed: 77") &&
    kbRecipe.includes("Size: 64x64"), kbRecipe);
  check("the result's actions are reachable with Tab", await tabTo("download", 20));
  await kb.locator("#prompt").focus();
  await kb.keyboard.press("Control+Enter");
  await waitForResults(kb, 2);
  check("Ctrl+Enter in the prompt generates", (await galleryCount(kb)) === 2);
  await kb.emulateMedia({ colorScheme: "dark" });
  await shot(kb, "desktop-dark");
  await kb.context().close();

  // ---- phone width --------------------------------------------------------------------------------------------------------
  const phone = await openPage({ width: 390, height: 844 });
  const overflow = () => phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check("at phone width (390 px) nothing scrolls sideways", (await overflow()) <= 0, await overflow());
  await phone.fill("#prompt", "a very long prompt, " + "with_many_words_that_do_not_break_easily ".repeat(6));
  await phone.fill("#steps", "3");
  await phone.fill("#width", "64");
  await phone.fill("#height", "64");
  await phone.click("#generate");
  await waitForResults(phone, 1);
  await phone.click("label[for=mode-inpaint]");
  check("  ... nor with a result, a long recipe and the inpainting panel", (await overflow()) <= 0, await overflow());
  const col = await phone.evaluate(() => {
    const c = document.querySelector(".controls").getBoundingClientRect();
    const o = document.querySelector(".output").getBoundingClientRect();
    return { controlsRight: c.right, outputTop: o.top, controlsBottom: c.bottom };
  });
  check("  ... the settings and the result stack in one column", col.controlsRight <= 390 && col.outputTop >= col.controlsBottom - 1, col);
  await phone.click("label[for=mode-txt2img]");
  await shot(phone, "phone-top");
  await shot(phone, "phone-result", ".output");
  await phone.context().close();

  check("no script errors in the page", pageErrors.length === 0, pageErrors.slice(0, 3));
} catch (e) {
  check("the page test ran to its end", false, String(e && e.stack || e));
} finally {
  await browser.close().catch(() => {});
  server.kill("SIGTERM");
  const code = await new Promise((r) => { server.once("exit", (c) => r(c)); setTimeout(() => r("timeout"), 20000); });
  check("the server exits 0 on SIGTERM", code === 0, code);
  clearTimeout(guard);
}
console.log(`web page: ${checks - fails} passed, ${fails} failed (${((Date.now() - started) / 1000).toFixed(1)} s); screenshots in ${shotDir}`);
process.exit(fails ? 1 : 0);
