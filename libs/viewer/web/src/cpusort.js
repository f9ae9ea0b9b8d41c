// The sort's distances, worked out on the CPU, in a worker of their own, instead of read back
// from the GPU.
//
// Spark sorts in a worker, but first it draws every splat's distance into a render target and
// reads it back (three.js readRenderTargetPixelsAsync, ending in WebGL getBufferSubData). That
// read-back waits for the GPU to finish whatever it was drawing: on a phone, under a 4×
// slower CPU, swipes waited 0.65-1.6 s while the page held 300-650 ms tasks in it. The peer
// (PlayCanvas) keeps the centres on the CPU and only uploads the order. Here too: the centres
// are decoded once from Spark's packed splats (float16, as the GPU reads them, so the order is
// the same), and each sort measures squared distances from the camera, handing them to Spark's
// worker exactly as the read-back would have.
//
// That measuring first ran on the page's thread: 7-24 ms per sort for the 500k-splat playbot on
// this machine, so 30-95 ms under a phone's 4× slower CPU, a long task on every sort while a
// finger turned a big model (and the one-off decode of its centres more). Both now run in a
// worker that keeps the centres; the page only copies the answer into Spark's buffer (a memcpy).
// Where no worker can start, the same functions run on the page, as before.
//
// Lighter while moving: a sort asked for `moving` leaves out all but the most important share of
// the splats (budget.js's ranking, worked out once): their distance is Infinity, which Spark's
// sort counts as inactive, so the frames drawn in that order draw only that share. The viewer
// asks for it on a device whose moving frames stay slow at its smallest resolution (viewer.js).

import { importantIndices, LN_SCALE_MAX, LN_SCALE_MIN } from "./budget.js";

/** The share of the splats a sort for a moving picture keeps. */
export const MOVING_SHARE = 0.5;

// float16 -> float32 for every 16-bit pattern (256 kB)
function halfToFloatTable() {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) table[h] = sign * 2 ** -14 * (frac / 1024);
    else if (exp === 31) table[h] = frac ? NaN : sign * Infinity;
    else table[h] = sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return table;
}

// x, y, z of the first `n` splats of Spark's packed encoding (four 32-bit words a splat)
function decodeCentres(words, n, half) {
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const w1 = words[i * 4 + 1];
    out[i * 3] = half[w1 & 0xffff];
    out[i * 3 + 1] = half[w1 >>> 16];
    out[i * 3 + 2] = half[words[i * 4 + 2] & 0xffff];
  }
  return out;
}

// Squared distances from (x, y, z) into `target`: what Spark's radial depth pass writes,
// squared (the same order, and the same for its sort, which compares the floats' bits).
function squaredDistances(centres, x, y, z, target) {
  const n = centres.length / 3;
  for (let i = 0; i < n; i++) {
    const dx = centres[i * 3] - x;
    const dy = centres[i * 3 + 1] - y;
    const dz = centres[i * 3 + 2] - z;
    const d = dx * dx + dy * dy + dz * dz;
    target[i] = d === d ? d : Infinity; // a NaN centre sorts last, as an inactive splat
  }
}

// Which splats a sort for a moving picture keeps (1) and leaves out (0).
function movingMask(words, n, share, lnScaleMin, lnScaleMax) {
  const mask = new Uint8Array(n);
  for (const i of importantIndices(words, n, Math.ceil(n * share), lnScaleMin, lnScaleMax)) mask[i] = 1;
  return mask;
}

// Leaves out of the sort (as inactive) the splats the mask does not keep.
function leaveOut(target, mask) {
  for (let i = 0; i < mask.length; i++) if (!mask[i]) target[i] = Infinity;
}

// The worker: keeps the centres, answers each eye with the distances in the buffer it was lent.
function distanceWorker() {
  let centres = null;
  let mask = null;
  self.onmessage = ({ data }) => {
    if (data.words) {
      centres = decodeCentres(data.words, data.n, halfToFloatTable());
      mask = movingMask(data.words, data.n, data.share, data.lnScaleMin, data.lnScaleMax);
      return;
    }
    squaredDistances(centres, data.x, data.y, data.z, data.out);
    if (data.moving) leaveOut(data.out, mask);
    self.postMessage({ id: data.id, out: data.out }, [data.out.buffer]);
  };
}

function startWorker() {
  // The functions' own source (minified with the bundle; they refer only to each other)
  const source = [halfToFloatTable, decodeCentres, squaredDistances, importantIndices, movingMask, leaveOut]
    .map(String).join("\n");
  const blob = new Blob([`${source}\n(${distanceWorker})()`], { type: "text/javascript" });
  const url = URL.createObjectURL(blob);
  try {
    return new Worker(url, { name: "foto3d-sort-distances" });
  } finally {
    URL.revokeObjectURL(url);
  }
}

/** One mesh's splat centres and the squared distances of each sort, off the page's thread. */
export class CentreDistances {
  /** For `mesh`'s packed splats, or null when it has none (Spark's own path then). */
  static of(mesh) {
    const packed = mesh.packedSplats;
    const words = packed && packed.packedArray;
    const n = packed ? packed.numSplats : 0;
    if (!words || !n || mesh.extSplats) return null;
    const enc = packed.splatEncoding || {};
    return new CentreDistances(words, n, [enc.lnScaleMin ?? LN_SCALE_MIN, enc.lnScaleMax ?? LN_SCALE_MAX]);
  }

  constructor(words, n, lnScales = [LN_SCALE_MIN, LN_SCALE_MAX]) {
    this.count = n;
    this.movingCount = Math.ceil(n * MOVING_SHARE);
    this._lnScales = lnScales;
    this.inWorker = false;
    this._pending = new Map();
    this._nextId = 0;
    this._out = new Float32Array(n);
    let worker = null;
    try {
      worker = startWorker();
    } catch {
      worker = null; // a page whose policy forbids blob: workers
    }
    if (!worker) {
      this._decodeHere(words, n);
      return;
    }
    this.inWorker = true;
    this._words = words; // until the worker is known to run: the page's fallback decodes it
    this._n = n;
    this.worker = worker;
    worker.onmessage = ({ data }) => {
      const resolve = this._pending.get(data.id);
      this._pending.delete(data.id);
      this._out = data.out;
      if (resolve) resolve(data.out);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      console.warn("foto3d-viewer: the sort's distance worker failed; measuring on the page");
      this._fallBack();
    };
    const copy = words.slice(0, n * 4); // Spark keeps its own array
    const [lnScaleMin, lnScaleMax] = lnScales;
    worker.postMessage({ words: copy, n, share: MOVING_SHARE, lnScaleMin, lnScaleMax }, [copy.buffer]);
  }

  _decodeHere(words, n) {
    this._centres = decodeCentres(words, n, halfToFloatTable());
    this._mask = movingMask(words, n, MOVING_SHARE, ...this._lnScales);
  }

  _fallBack() {
    if (!this.inWorker) return;
    this.inWorker = false;
    this.worker.terminate();
    this._decodeHere(this._words, this._n);
    this._out = new Float32Array(this._n);
    for (const [, resolve] of this._pending) resolve(null);
    this._pending.clear();
  }

  /**
   * Fills `target` (Float32Array, `count` long) with the squared distances from `eye`; `moving`:
   * Infinity (left out) for all but the MOVING_SHARE most important splats.
   */
  async into(eye, target, moving = false) {
    if (this.inWorker) {
      const id = ++this._nextId;
      const out = this._out;
      const answer = new Promise((resolve) => this._pending.set(id, resolve));
      this.worker.postMessage({ id, x: eye.x, y: eye.y, z: eye.z, out, moving }, [out.buffer]);
      const filled = await answer;
      if (filled) {
        target.set(filled);
        return;
      }
    }
    // disposed (the model was replaced) while this sort waited: Spark sorts the new one anyway
    if (!this._centres) return;
    squaredDistances(this._centres, eye.x, eye.y, eye.z, target);
    if (moving) leaveOut(target, this._mask);
  }

  dispose() {
    if (this.worker) this.worker.terminate();
    this.inWorker = false;
    for (const [, resolve] of this._pending) resolve(null);
    this._pending.clear();
  }
}
