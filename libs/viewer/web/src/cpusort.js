// The sort's distances, worked out on the page's own thread instead of read back from the GPU.
//
// Spark sorts in a worker, but first it draws every splat's distance into a render target and
// reads it back (three.js readRenderTargetPixelsAsync, ending in WebGL getBufferSubData). That
// read-back waits for the GPU to finish whatever it was drawing: on a phone, under a 4×
// slower CPU, swipes waited 0.65-1.6 s while the page held 300-650 ms tasks in it. The peer
// (PlayCanvas) keeps the centres on the CPU and only uploads the order. Here too: the centres
// are decoded once from Spark's packed splats (float16, as the GPU reads them, so the order is
// the same), and each sort measures squared distances from the camera, about 2 ms per 100k
// splats, handing them to Spark's worker exactly as the read-back would have.

// float16 -> float32 for every 16-bit pattern (256 kB, built on first use)
let HALF = null;
function halfTable() {
  if (HALF) return HALF;
  HALF = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) HALF[h] = sign * 2 ** -14 * (frac / 1024);
    else if (exp === 31) HALF[h] = frac ? NaN : sign * Infinity;
    else HALF[h] = sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return HALF;
}

/** The mesh's splat centres (its own frame) as x, y, z floats, or null when it has none packed. */
export function packedCentres(mesh) {
  const packed = mesh.packedSplats;
  const words = packed && packed.packedArray;
  const n = packed ? packed.numSplats : 0;
  if (!words || !n || mesh.extSplats) return null;
  const half = halfTable();
  const out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const w1 = words[i * 4 + 1];
    out[i * 3] = half[w1 & 0xffff];
    out[i * 3 + 1] = half[w1 >>> 16];
    out[i * 3 + 2] = half[words[i * 4 + 2] & 0xffff];
  }
  return out;
}

/**
 * Squared distances from `eye` (the mesh's own frame) into `target` (a Float32Array over the
 * read-back buffer): what Spark's radial depth pass writes, squared (the same order, and the
 * same for its sort, which compares the floats' bits).
 */
export function squaredDistances(centres, eye, target) {
  const n = centres.length / 3;
  const { x, y, z } = eye;
  for (let i = 0; i < n; i++) {
    const dx = centres[i * 3] - x;
    const dy = centres[i * 3 + 1] - y;
    const dz = centres[i * 3 + 2] - z;
    const d = dx * dx + dy * dy + dz * dz;
    target[i] = d === d ? d : Infinity; // a NaN centre sorts last, as an inactive splat
  }
}
