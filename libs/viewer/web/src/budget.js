// A splat budget per device class: a model with more splats than the device should carry keeps
// only its most important ones, once, when it has been decoded and before anything reaches the GPU.
//
// A phone's browser gives a page a few hundred MB of GPU memory and a slow GPU; a model of a
// million splats or more crashed phone-class viewers (the recurring complaint about web splat
// viewers). Spark 2's own level of detail would bound it, but it draws with Spark's shaders and
// its GPU read-back sort (both replaced here for speed, batched.js and cpusort.js) and its default
// budgets (1-1.5M on phones) would not trim the 500k-splat playbot. So the viewer trims itself:
// every splat gets the score the Python reducer's `area` importance gives (libs/splat/importance.py:
// opacity x the product of its two largest axes, what it covers on screen from a typical view),
// and the budget's worth of best-scored splats stay, in their file order. Everything after this
// (texture upload, Spark's per-frame generation, sorting, drawing) then costs the budget's count,
// not the file's.
//
// The scoring and the compaction run in a worker (the page's thread only hands the arrays over,
// without copying); where no worker can start, the same functions run on the page.

import { deviceClass } from "./beacon.js";

/** Splats kept per device class (`max-splats` on the element overrides it). */
export const BUDGETS = { phone: 400_000, tablet: 1_000_000, desktop: 4_000_000 };

const SPLAT_ROW = 2048; // Spark's splat texture width: its arrays hold whole rows
const SH_WORDS = { sh1: 2, sh2: 4, sh3: 4 }; // 32-bit words per splat of each SH band's array
// Spark's default scale encoding, when a file sets none
export const LN_SCALE_MIN = -12;
export const LN_SCALE_MAX = 9;

/**
 * The device class this page runs on: "phone" for a coarse pointer on a small screen, and for
 * any device that says it has at most 4 GB of memory (`navigator.deviceMemory`, Chromium);
 * "tablet" or "desktop" otherwise, as the analytics beacon classes them.
 */
export function budgetClass(win = window) {
  const memory = win.navigator?.deviceMemory;
  const cls = deviceClass(win);
  if (typeof memory === "number" && memory > 0 && memory <= 4) return "phone";
  return cls;
}

/**
 * The budget for this page: the `max-splats` attribute when it is a positive integer ("none" or
 * 0: no budget), else the device class's. Returns { budget (Infinity = none), deviceClass, source }.
 */
export function chooseBudget(attribute, win = window) {
  const cls = budgetClass(win);
  const value = (attribute ?? "").trim().toLowerCase();
  if (value === "none" || value === "0") return { budget: Infinity, deviceClass: cls, source: "attribute" };
  const n = Number(value);
  if (value && Number.isInteger(n) && n > 0) return { budget: n, deviceClass: cls, source: "attribute" };
  if (value) console.error(`foto3d-viewer: max-splats "${attribute}" is not a positive whole number; using the ${cls} budget`);
  return { budget: BUDGETS[cls] ?? BUDGETS.desktop, deviceClass: cls, source: "device" };
}

/**
 * Indices (ascending) of the `keep` most important of the first `n` splats in Spark's packed
 * encoding (four 32-bit words a splat: rgba8, centre xy, centre z + rotation, log-scales + rotation).
 * Importance: ln(opacity) + the sum of the two largest ln(scale), i.e. opacity x projected area.
 * Exactly `keep` come back: ties at the threshold go in file order.
 */
export function importantIndices(words, n, keep, lnScaleMin, lnScaleMax) {
  const step = (lnScaleMax - lnScaleMin) / 254;
  const score = new Float32Array(n);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const a = words[i * 4] >>> 24;
    const w3 = words[i * 4 + 3];
    const x = w3 & 255;
    const y = (w3 >>> 8) & 255;
    const z = (w3 >>> 16) & 255;
    const smallest = Math.min(x, y, z);
    const mid = x + y + z - smallest - Math.max(x, y, z);
    // no opacity, or a splat flat in two axes (code 0 is a zero scale), covers nothing
    const s = a === 0 || mid === 0 ? -Infinity : Math.log(a) + step * (x + y + z - smallest);
    score[i] = s;
    if (s !== -Infinity) {
      if (s < lo) lo = s;
      if (s > hi) hi = s;
    }
  }
  // The keep-th best score by a histogram of the scores (linear time; a sort of 1M floats
  // would be several times slower), then one pass that takes everything above it.
  const BINS = 65536;
  const span = hi > lo ? (hi - lo) / (BINS - 1) : 1;
  const binOf = (s) => (s === -Infinity ? -1 : Math.floor((s - lo) / span));
  const counts = new Uint32Array(BINS);
  for (let i = 0; i < n; i++) {
    const b = binOf(score[i]);
    if (b >= 0) counts[b]++;
  }
  let threshold = -1; // splats in bins above it are all kept, then ties at it in file order
  let above = 0;
  for (let b = BINS - 1; b >= 0; b--) {
    if (above + counts[b] >= keep) {
      threshold = b;
      break;
    }
    above += counts[b];
  }
  const out = new Uint32Array(keep);
  let tiesLeft = keep - above;
  let k = 0;
  for (let i = 0; i < n && k < keep; i++) {
    const b = binOf(score[i]);
    if (b > threshold || (b === threshold && tiesLeft-- > 0)) out[k++] = i;
  }
  // (fewer scored splats than the budget: threshold -1, the unscored ones fill it in file order)
  return k < keep ? out.slice(0, k) : out;
}

/** Copies the chosen splats' words (and their SH words) into fresh, compact arrays. */
function compactSplats(words, extra, indices, row) {
  const k = indices.length;
  const capacity = Math.max(row, Math.ceil(k / row) * row);
  const packed = new Uint32Array(capacity * 4);
  for (let j = 0; j < k; j++) {
    const i = indices[j];
    packed.set(words.subarray(i * 4, i * 4 + 4), j * 4);
  }
  const sh = {};
  for (const [key, { words: per, data }] of Object.entries(extra)) {
    const dst = new Uint32Array(k * per);
    for (let j = 0; j < k; j++) {
      const i = indices[j];
      dst.set(data.subarray(i * per, (i + 1) * per), j * per);
    }
    sh[key] = dst;
  }
  return { packed, sh };
}

function trim({ words, n, keep, lnScaleMin, lnScaleMax, extra, row }) {
  const indices = importantIndices(words, n, keep, lnScaleMin, lnScaleMax);
  return { ...compactSplats(words, extra, indices, row), kept: indices.length };
}

function trimWorker() {
  self.onmessage = ({ data }) => {
    try {
      const out = trim(data);
      self.postMessage(out, [out.packed.buffer, ...Object.values(out.sh).map((a) => a.buffer)]);
    } catch (err) {
      self.postMessage({ error: String(err && err.message ? err.message : err) });
    }
  };
}

function startWorker() {
  const source = [importantIndices, compactSplats, trim].map(String).join("\n");
  const blob = new Blob([`${source}\n(${trimWorker})()`], { type: "text/javascript" });
  const url = URL.createObjectURL(blob);
  try {
    return new Worker(url, { name: "foto3d-splat-budget" });
  } finally {
    URL.revokeObjectURL(url);
  }
}

function runTrim(job) {
  let worker = null;
  try {
    worker = startWorker();
  } catch {
    worker = null; // a page whose policy forbids blob: workers
  }
  if (!worker) return Promise.resolve({ ...trim(job), inWorker: false });
  return new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => {
      worker.terminate();
      if (data.error) reject(new Error(`splat budget: ${data.error}`));
      else resolve({ ...data, inWorker: true });
    };
    worker.onerror = (event) => {
      event.preventDefault();
      worker.terminate();
      reject(new Error(`splat budget: ${event.message || "the worker failed"}`));
    };
    // handed over, not copied: Spark's arrays are replaced by the compact ones below
    const buffers = [job.words.buffer, ...Object.values(job.extra).map((e) => e.data.buffer)];
    worker.postMessage(job, [...new Set(buffers)]);
  });
}

/** Bytes of the splat arrays Spark uploads for `packed` (its textures), plus its per-frame
 * generated splats (16 B each) and sort order (4 B each): an estimate of the GPU memory it needs. */
export function splatGpuBytes(packed) {
  if (!packed || !packed.packedArray) return 0;
  let bytes = packed.packedArray.byteLength;
  for (const key of Object.keys(SH_WORDS)) if (packed.extra?.[key]) bytes += packed.extra[key].byteLength;
  return bytes + packed.numSplats * (16 + 4);
}

/**
 * Keeps at most `budget` splats of `mesh` (a Spark SplatMesh just loaded, not yet drawn): the
 * most important ones. Returns what it did: { total, kept, trimmed, ms, inWorker }.
 */
export async function applySplatBudget(mesh, budget) {
  const packed = mesh.packedSplats;
  const n = packed ? packed.numSplats : 0;
  const words = packed && packed.packedArray;
  const result = { total: n, kept: n, trimmed: false, ms: 0, inWorker: false };
  // level-of-detail encodings (Spark's .rad) carry their own tree: not ours to cut
  if (!words || !(n > budget) || packed.lodSplats || packed.splatEncoding?.lodOpacity) return result;
  const started = performance.now();
  const enc = packed.splatEncoding || {};
  const extra = {};
  for (const [key, per] of Object.entries(SH_WORDS)) {
    if (packed.extra?.[key]) extra[key] = { words: per, data: packed.extra[key] };
  }
  const job = {
    words, n, keep: budget, extra, row: SPLAT_ROW,
    lnScaleMin: enc.lnScaleMin ?? LN_SCALE_MIN, lnScaleMax: enc.lnScaleMax ?? LN_SCALE_MAX,
  };
  const out = await runTrim(job);
  packed.initialize({
    packedArray: out.packed,
    numSplats: out.kept,
    extra: { ...packed.extra, ...out.sh },
    splatEncoding: packed.splatEncoding,
  });
  packed.needsUpdate = true;
  mesh.numSplats = packed.numSplats;
  mesh.updateGenerator();
  return { ...result, kept: packed.numSplats, trimmed: true, ms: performance.now() - started, inWorker: out.inWorker };
}

