// The spherical-harmonics degree of a splat file, read from its first bytes.
//
// Spark generates each model's splats (colour for the current view included) with a program it
// builds for the model's SH degree, the first time it draws a model of that degree. The warm-up
// (warmup.js) builds the degree-0 program while the file downloads; a model with view-dependent
// colour paid for building its own between its file and its first frame (60-70 ms of the
// 500k-splat, SH-2 playbot's, on two cores). The download's first bytes (download.js) say which
// degree is coming, in time for the warm-up to build that program too.
import { plyHeaderLines } from "./plyheader.js";

// f_rest_* properties of a .ply (and PlayCanvas's compressed .ply) per SH degree: 3 colours x
// (degree + 1)^2 - 1 coefficients.
const DEGREE_OF_REST = new Map([
  [0, 0],
  [9, 1],
  [24, 2],
  [45, 3],
]);
const SPZ_MAGIC = 0x5053474e; // "NGSP", little-endian

/** The SH degree a .ply or compressed .ply header in `bytes` declares, or null. */
export function plyShDegree(bytes) {
  const lines = plyHeaderLines(bytes);
  if (lines === null) return null;
  const rest = lines.filter((line) => /^property\s+\S+\s+f_rest_\d+$/.test(line.trim()));
  return DEGREE_OF_REST.get(rest.length) ?? null;
}

/** The SH degree an .spz file's header declares, from the file's first (gzip) bytes, or null. */
export async function spzShDegree(bytes) {
  const inflate = new DecompressionStream("gzip");
  const writer = inflate.writable.getWriter();
  const reader = inflate.readable.getReader();
  // The head is a cut-off gzip stream: never closed, so it never fails for being short; the
  // header comes out of the first block as soon as it is written.
  writer.write(bytes).catch(() => {});
  const header = new Uint8Array(16);
  let have = 0;
  try {
    while (have < header.length) {
      const { value, done } = await reader.read();
      if (done) break;
      const take = value.subarray(0, header.length - have);
      header.set(take, have);
      have += take.length;
    }
  } catch {
    return null; // not gzip
  } finally {
    reader.cancel().catch(() => {});
    writer.abort().catch(() => {});
  }
  if (have < 13) return null;
  const view = new DataView(header.buffer);
  if (view.getUint32(0, true) !== SPZ_MAGIC) return null;
  const degree = header[12];
  return degree <= 3 ? degree : null;
}

/** The SH degree of a file of `format` (a registry name) from its first bytes; null if unknown. */
export async function shDegree(format, head) {
  if (format === "ply" || format === "compressed-ply") return plyShDegree(head);
  if (format === "spz") return spzShDegree(head);
  if (format === "splat") return 0; // .splat has no SH
  return null; // .sog keeps its degree in meta.json, inside the zip
}
