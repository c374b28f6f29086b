// The lab: the shipped model in the browser. ONNX Runtime Web (WASM) runs the exported graphs
// (python -m fmnist_ldm export-onnx), samplers.js does the maths between them, as the library does.
//
// API, for tests and lecturers:
//   await window.lab.ready
//   const {images} = await window.lab.generate({classes: [7, 7, 10], seed: 0, sampler: "dpmpp2m",
//                                               steps: 20, guidance: 5, guidanceInterval: [300, 700]})
//   images: Uint8Array of n x 28 x 28 grey levels. Instead of seed, noise: a Float32Array of
//   n x 4 x 7 x 7, the state at t = T-1 (the same noise gives Pipeline.generate's images).
import * as ort from "./ort/ort.wasm.min.mjs";
import { guide, guides, makeSampler, makeSchedule, sample, split } from "./samplers.js";
import { normalStream } from "./rng.js";

const MODELS = ["unet", "student", "decoder", "judge"];   // the encoder (editing, inpainting) is not used here yet
const $ = (id) => document.getElementById(id);
const log = (...a) => console.log("[lab]", ...a);

ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;
// threads: one core is left to the decoder worker, up to 4 for the UNet where the page is
// cross-origin isolated (else WASM has one): on 2 cores, 1 thread here measured faster than 2
// (benchmarks/lab_speed.py); ?threads=N overrides
const askedThreads = parseInt(new URLSearchParams(location.search).get("threads"), 10);
ort.env.wasm.numThreads = !self.crossOriginIsolated ? 1 : askedThreads > 0 ? askedThreads
  : Math.max(1, Math.min((navigator.hardwareConcurrency || 1) - 1, 4));

let manifest, sched, sessions = {}, queue = Promise.resolve();

/** Fetch a file, reporting bytes as they arrive: onBytes(received). */
async function fetchBytes(url, onBytes) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  const reader = r.body.getReader(), parts = [];
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value); got += value.length; onBytes(got);
  }
  const out = new Uint8Array(got);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

async function load() {
  const bar = $("progress"), status = $("status");
  manifest = await (await fetch("models/manifest.json")).json();
  sched = makeSchedule(manifest.alphas_cumprod);
  const total = MODELS.reduce((s, m) => s + manifest.graphs[m].bytes, 0), got = {};
  const show = () => { const n = Object.values(got).reduce((a, b) => a + b, 0); bar.value = n / total; };
  const bytes = await Promise.all(MODELS.map((m) => fetchBytes(`models/${manifest.graphs[m].file}`,
    (n) => { got[m] = n; show(); })));
  status.textContent = "starting ONNX Runtime (WASM) ...";
  for (let i = 0; i < MODELS.length; i++) {
    sessions[MODELS[i]] = await ort.InferenceSession.create(bytes[i], { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  }
  await startWorker(bytes[MODELS.indexOf("decoder")]);
  bar.hidden = true;
  status.textContent = `ready: ONNX Runtime Web ${ort.env.versions?.web ?? ""}, WASM, ${ort.env.wasm.numThreads} thread(s)` +
    (self.crossOriginIsolated ? "" : " (the page is not cross-origin isolated: one thread)");
  return manifest;
}

const shape = () => manifest.latent_shape, per = () => shape().reduce((a, b) => a * b, 1);

// The decoder-worker.js: decodes the steps' guesses while the UNet runs the next step.
let worker, workerJobs = new Map(), workerIds = 0;
function toWorker(message, transfer = []) {
  const id = ++workerIds;
  return new Promise((resolve, reject) => { workerJobs.set(id, { resolve, reject }); worker.postMessage({ ...message, id }, transfer); });
}
async function startWorker(decoderBytes) {
  worker = new Worker(new URL("./decoder-worker.js", import.meta.url), { type: "module" });
  worker.onmessage = ({ data }) => {
    const job = workerJobs.get(data.id);
    workerJobs.delete(data.id);
    data.error ? job.reject(new Error(`decoder worker: ${data.error}`)) : job.resolve(data.image);
  };
  worker.onerror = (e) => fail(new Error(`decoder worker: ${e.message}`));
  await toWorker({ type: "load", bytes: decoderBytes.slice() });
}
const decodeInWorker = (z, n) => toWorker({ type: "decode", z, n, shape: shape() });

/** One network pass: x [n,4,7,7], t per image, y per image -> raw output (v). */
async function runNet(net, x, t, y) {
  const n = y.length;
  const feeds = { x: new ort.Tensor("float32", x, [n, ...shape()]),
                  t: new ort.Tensor("int64", BigInt64Array.from(t, BigInt), [n]),
                  y: new ort.Tensor("int64", BigInt64Array.from(y, BigInt), [n]) };
  return (await sessions[net].run(feeds)).out.data;
}

/** sampling.GuidedDenoiser: (x, t) -> {x0, eps}, with guidance w in the interval (a doubled batch:
 * the class and the null class, or no guidance where it does not apply). */
function denoiser(net, y, w, interval) {
  const n = y.length, conditional = y.some((c) => c !== manifest.null_class);
  return async (x, t) => {
    let out;
    if (guides(t, w, interval, conditional)) {
      const xx = new Float32Array(2 * x.length); xx.set(x); xx.set(x, x.length);
      const both = await runNet(net, xx, new Array(2 * n).fill(t), y.concat(new Array(n).fill(manifest.null_class)));
      out = guide(both.subarray(0, x.length), both.subarray(x.length), w);
    } else {
      out = await runNet(net, x, new Array(n).fill(t), y);
    }
    return split(out, x, sched.abarAt(t), manifest.prediction);
  };
}

/** Model-space latents [n,4,7,7] -> images in [-1, 1] (the decoder divides by the latent scale). */
async function decode(z, n) {
  return (await sessions.decoder.run({ z: new ort.Tensor("float32", z, [n, ...shape()]) })).image.data;
}

/** data.to_uint8: round((clamp(x, -1, 1) + 1) * 127.5), half to even as torch rounds. */
function toUint8(images) {
  const out = new Uint8Array(images.length);
  for (let i = 0; i < images.length; i++) {
    const v = (Math.min(1, Math.max(-1, images[i])) + 1) * 127.5, r = Math.round(v);
    out[i] = v - Math.floor(v) === 0.5 && r % 2 ? r - 1 : r;
  }
  return out;
}

async function judge(images, n) {
  return (await sessions.judge.run({ image: new ort.Tensor("float32", images, [n, 1, 28, 28]) })).probs.data;
}

/** Options with the library's defaults filled in (sampling.DEFAULTS, the student's 4 steps). */
function withDefaults(o = {}) {
  const d = manifest.defaults, sampler = o.sampler ?? d.sampler;
  const n = o.classes?.length ?? (o.noise ? o.noise.length / per() : 10);
  const classes = o.classes ?? Array.from({ length: n }, (_, i) => i % manifest.num_classes);
  return { classes: classes.map(Number), sampler, seed: o.seed ?? 0, noise: o.noise,
           steps: o.steps ?? (sampler === "distilled" ? d.distilled_steps : d.steps),
           guidance: o.guidance ?? d.guidance,
           guidanceInterval: o.guidanceInterval === undefined ? d.guidance_interval : o.guidanceInterval };
}

/** One run. draw({i, steps, t, shown, traj, ms}), if given, is called for each step drawn. */
async function run(options, draw = null) {
  const o = withDefaults(options), n = o.classes.length, randn = normalStream(o.seed);
  if (!(n >= 1)) throw new Error("classes: at least one image");
  if (!o.classes.every((c) => Number.isInteger(c) && c >= 0 && c <= manifest.null_class))
    throw new Error(`classes must be indices 0 to ${manifest.null_class} (${manifest.null_class} = none)`);
  if (o.sampler !== "distilled" && !(Number.isInteger(o.steps) && o.steps >= 1 && o.steps <= sched.T))
    throw new Error(`steps must be a whole number from 1 to ${sched.T}, not ${o.steps}`);
  if (!(o.guidance >= 0)) throw new Error(`guidance must be >= 0 (1 = none), not ${o.guidance}`);
  let x = o.noise ? Float32Array.from(o.noise) : randn(n * per());
  if (x.length !== n * per()) throw new Error(`noise must hold n x ${shape().join(" x ")} = ${n * per()} values, not ${x.length}`);
  const sampler = makeSampler(o.sampler, sched, manifest, randn);
  const w = sampler.guided ? o.guidance : 1.0;
  // shown[k]: the decoded guess of the clean image at step k (the image itself at the last step);
  // decoded as the run goes where it is drawn, else (the API) on demand by the step slider
  const traj = { ts: null, xs: [x], x0s: [], shown: [], n, classes: o.classes, options: o };
  const t0 = performance.now();
  // Drawing: the decoder worker decodes the newest step's guess while the UNet runs on here; a
  // step it had no time for is skipped on screen (the slider decodes it later), never waited for.
  let newest = -1, drawnUpTo = -1, drawing = null;
  const drawNewest = async () => {
    for (let k; (k = newest) > drawnUpTo;) {
      const shown = await decodeInWorker(traj.x0s[k], n);
      traj.shown[k] = shown; drawnUpTo = k; traj.drawn = (traj.drawn ?? 0) + 1;
      await draw({ i: k, steps: traj.ts.length - 1, t: traj.ts[k], shown, traj, ms: performance.now() - t0 });
    }
    drawing = null;
  };
  x = await sample(denoiser(sampler.network, o.classes, w, o.guidanceInterval), sampler, x, o.steps,
    async ({ i, t, tNext, x: xn, x0, ts }) => {
      traj.ts = ts; traj.xs.push(xn); traj.x0s.push(tNext < 0 ? xn : x0);
      if (!draw) return;
      newest = i;
      drawing ??= drawNewest();
      if (i === 0) {                   // the first guess on screen before anything else
        await drawing;
        await new Promise(requestAnimationFrame);
      } else {                         // a task boundary: the worker's answer is read, the page painted
        await new Promise((r) => setTimeout(r, 0));
      }
    });
  if (drawing) await drawing;          // ends with the last step, the images themselves
  const S = traj.x0s.length;
  traj.shown[S - 1] ??= await decode(x, n);
  traj.images = toUint8(traj.shown[S - 1]);
  traj.ms = performance.now() - t0;
  return traj;
}

// ---- the page ------------------------------------------------------------------------------

const SETTINGS = ["class", "n", "sampler", "steps", "guidance", "interval", "seed"];

function readURL() {
  const q = new URLSearchParams(location.search);
  for (const k of SETTINGS) if (q.has(k)) $(k).value = q.get(k);
  syncControls();
}

function writeURL() {
  const q = new URLSearchParams();
  for (const k of SETTINGS) q.set(k, $(k).value);
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

function syncControls() {
  const distilled = $("sampler").value === "distilled";
  $("guidance").disabled = $("interval").disabled = distilled;
  $("steps").max = distilled ? manifest?.student_teacher_timesteps.length - 1 || 20 : 1000;
}

function uiOptions() {
  const n = Math.max(1, Math.min(16, parseInt($("n").value, 10) || 1)), c = parseInt($("class").value, 10);
  const iv = $("interval").value.trim().toLowerCase();
  return { classes: new Array(n).fill(c), sampler: $("sampler").value, steps: parseInt($("steps").value, 10),
           guidance: parseFloat($("guidance").value), seed: parseInt($("seed").value, 10) || 0,
           guidanceInterval: iv === "none" || iv === "" ? null : iv.split(",").map(Number) };
}

/** Images in [-1,1] (n x 28 x 28) into a canvas as a grid, `cols` wide, 1-pixel gaps. */
function drawGrid(canvas, images, n, cols = Math.min(4, n)) {
  const rows = Math.ceil(n / cols), W = cols * 29 - 1, H = rows * 29 - 1;
  canvas.width = W; canvas.height = H;
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(W, H), g = toUint8(images);
  img.data.fill(255);
  for (let k = 0; k < n; k++) {
    const ox = (k % cols) * 29, oy = Math.floor(k / cols) * 29;
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) {
      const p = ((oy + y) * W + ox + x) * 4, v = g[k * 784 + y * 28 + x];
      img.data[p] = img.data[p + 1] = img.data[p + 2] = v;
    }
  }
  ctx.putImageData(img, 0, 0);
}

let last = null, selected = 0;
const zCache = new Map(), judgeCache = new Map();

async function showStep(k) {
  if (!last) return;
  const S = last.x0s.length, n = last.n;
  k = Math.max(0, Math.min(S, k));
  const tk = k < S ? last.ts[k] : -1;
  $("stepinfo").textContent = `step ${k}/${S}` + (k < S ? ` (t = ${tk})` : " (clean)");
  if (!zCache.has(k)) zCache.set(k, await serial(() => decode(last.xs[k], n)));
  drawGrid($("zt"), zCache.get(k), n);
  const j = Math.min(k, S - 1);
  if (!last.shown[j]) last.shown[j] = await serial(() => decode(last.x0s[j], n));
  const shown = last.shown[j];
  drawGrid($("x0"), shown, n);
  if (!judgeCache.has(k)) judgeCache.set(k, await serial(() => judge(shown, n)));
  drawProbs(judgeCache.get(k).subarray(selected * 10, selected * 10 + 10));
  $("scrub").dataset.shown = String(k);
}

function drawProbs(p) {
  const box = $("probs"), asked = last.classes[selected];
  box.replaceChildren(...manifest.class_names.map((name, c) => {
    const row = document.createElement("div"), bar = document.createElement("span");
    row.className = "prob" + (c === asked ? " asked" : "");
    bar.style.width = `${(100 * p[c]).toFixed(1)}%`;
    row.append(Object.assign(document.createElement("label"), { textContent: name }), bar,
      Object.assign(document.createElement("em"), { textContent: `${(100 * p[c]).toFixed(0)} %` }));
    return row;
  }));
  $("probsfor").textContent = `image ${selected + 1}`;
}

/** Runs one ONNX job at a time (a session runs one call at a time). */
function serial(job) {
  const p = queue.then(job);
  queue = p.catch(() => {});
  return p;
}

async function generate(options = {}, draw = null) {
  await lab.ready;
  const traj = await serial(() => run(options, draw));
  return { images: traj.images, n: traj.n, ms: traj.ms, steps: traj.x0s.length, trajectory: traj };
}

async function generateFromUI() {
  writeURL();
  const btn = $("go");
  btn.disabled = true;
  const firstAt = [];
  try {
    const r = await generate(uiOptions(), async ({ i, steps, t, shown, traj, ms }) => {
      firstAt.push(ms);
      drawGrid($("grid"), shown, traj.n);
      $("caption").textContent = `step ${i + 1}/${steps} (t = ${t})`;
      $("runbar").value = (i + 1) / steps;
    });
    last = r.trajectory; zCache.clear(); judgeCache.clear(); selected = 0;
    lab.last = r;
    lab.timings = { firstStepMs: firstAt[0], totalMs: r.ms, stepsDrawn: firstAt.length };
    $("caption").textContent = `${r.steps} steps in ${r.ms.toFixed(0)} ms, ${firstAt.length} of them drawn ` +
      `(the first after ${firstAt[0].toFixed(0)} ms); the slider shows them all`;
    const slider = $("scrub");
    slider.max = String(r.steps); slider.value = String(r.steps); slider.disabled = false;
    await showStep(r.steps);
  } finally {
    btn.disabled = false;
  }
}

function setupUI() {
  const cls = $("class");
  cls.replaceChildren(...manifest.class_names.map((name, c) => new Option(`${c} ${name}`, String(c))),
    new Option("none (unconditional)", String(manifest.null_class)));
  const d = manifest.defaults;
  $("steps").value = d.steps; $("guidance").value = d.guidance; $("interval").value = d.guidance_interval.join(",");
  $("sampler").value = d.sampler;
  readURL();
  for (const k of SETTINGS) $(k).addEventListener("change", () => { syncControls(); writeURL(); });
  $("sampler").addEventListener("change", () => {
    $("steps").value = $("sampler").value === "distilled" ? d.distilled_steps : d.steps; writeURL();
  });
  $("dice").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 1e6); writeURL(); });
  $("go").addEventListener("click", () => generateFromUI().catch(fail));
  $("scrub").addEventListener("input", (e) => showStep(parseInt(e.target.value, 10)).catch(fail));
  $("grid").addEventListener("click", (e) => {
    if (!last) return;
    const r = e.target.getBoundingClientRect(), cols = Math.min(4, last.n);
    const col = Math.floor(((e.clientX - r.left) / r.width) * cols), row = Math.floor(((e.clientY - r.top) / r.height) * Math.ceil(last.n / cols));
    selected = Math.min(last.n - 1, row * cols + col);
    showStep(parseInt($("scrub").value, 10)).catch(fail);
  });
  $("go").disabled = false;
}

function fail(e) {
  console.error(e);
  $("status").textContent = `error: ${e.message ?? e}`;
}

const lab = (window.lab = { generate, ort });
lab.ready = load().then((m) => { lab.manifest = m; setupUI(); return m; });
lab.ready.catch(fail);
lab.showStep = showStep;
