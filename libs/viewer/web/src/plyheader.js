// The up axis a .ply file records in its header, read as libs/splat/formats/ply.py reads it.
//
// nerfstudio's exporter (and so our trainer) writes `comment Vertical Axis: z`; 3DGS/INRIA and
// PlayCanvas files say nothing and are -Y up. The viewer gets the header from the download's
// first bytes (download.js), so knowing the axis costs nothing extra.

const AXES = new Set(["x", "-x", "y", "-y", "z", "-z"]);
const PREFIX = "vertical axis:";

/** The lines of the .ply header at the start of `bytes` (up to end_header), or null if none. */
export function plyHeaderLines(bytes) {
  const text = new TextDecoder("latin1").decode(bytes);
  const end = text.indexOf("end_header");
  if (!text.startsWith("ply") || end < 0) return null;
  return text.slice(0, end).split(/\r?\n/);
}

/** The axis (x, -x, y, -y, z, -z) the header in `bytes` records, or null when it records none. */
export function recordedUp(bytes) {
  for (const line of plyHeaderLines(bytes) ?? []) {
    const words = line.trim();
    if (!words.startsWith("comment ")) continue;
    const comment = words.slice("comment ".length).trim();
    if (!comment.toLowerCase().startsWith(PREFIX)) continue;
    const value = comment.slice(PREFIX.length).trim().toLowerCase();
    if (AXES.has(value)) return value;
    // or a unit vector along an axis, such as "0 -1 0"
    const parts = value.split(/\s+/);
    if (parts.length !== 3) continue;
    const rounded = parts.map((p) => Math.round(Number(p)));
    if (rounded.some((v) => !Number.isFinite(v))) return null;
    const axis = rounded.findIndex((v) => v !== 0);
    if (rounded.filter((v) => v !== 0).length !== 1 || Math.abs(rounded[axis]) !== 1) continue;
    return (rounded[axis] < 0 ? "-" : "") + "xyz"[axis];
  }
  return null;
}
