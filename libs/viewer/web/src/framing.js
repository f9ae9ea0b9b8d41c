// Default framing: where the object is, which way is up, and how far the camera must stay.
//
// Bounds are *robust*: per-axis percentiles of the centres of reasonably opaque gaussians, so a
// few floaters far away do not shrink the object to a dot (the same rule as
// libs/viewer/config.py's robust_bounds, which the publisher writes into viewer.json).
import * as THREE from "three";
import FORMAT_TABLE from "./formats.json";

const UP_VECTORS = {
  x: [1, 0, 0],
  "-x": [-1, 0, 0],
  y: [0, 1, 0],
  "-y": [0, -1, 0],
  z: [0, 0, 1],
  "-z": [0, 0, -1],
};

// The up axis of each format's data *as Spark reads it*, i.e. as stored (the meaning of every
// `up` in the pipeline, proto/jobs.py UpAxis), when neither the config nor the file entry says:
// formats.json, written from the splat format registry (libs/viewer/formats.py). Spark reads
// .spz raw, and Niantic's files are RUB, i.e. +Y up, like three.js; the others are read as
// stored: the trainer's .ply is +Z up, PlayCanvas's compressed PLY / SOG and .splat are -Y up.
// (Files written by splat-transform 3.7 as .spz skip the RUB turn, so they are -Y up: their
// config must say so.)
const FORMAT_UP = Object.fromEntries(Object.entries(FORMAT_TABLE.formats).map(([name, f]) => [name, f.up]));

export function upForFormat(format) {
  return FORMAT_UP[format] || "-y";
}

/** The rotation turning the data's up axis onto three.js's +Y. */
export function uprightQuaternion(up) {
  const from = new THREE.Vector3(...(UP_VECTORS[up] || UP_VECTORS["-y"]));
  const to = new THREE.Vector3(0, 1, 0);
  if (from.dot(to) < -0.5) return new THREE.Quaternion().setFromAxisAngle(new THREE.Vector3(1, 0, 0), Math.PI);
  return new THREE.Quaternion().setFromUnitVectors(from, to);
}

// Enough centres for percentiles to a fraction of a percent, and few enough that framing a
// 500k-splat model costs milliseconds: this runs between the file's arrival and the first frame.
const MAX_SAMPLES = 32768;

/** {min, max, center, radius} of the opaque centres between the 2nd and 98th percentile. */
export function robustBounds(mesh, lo = 0.02, hi = 0.98) {
  const splats = mesh.splats || mesh.packedSplats; // Spark's PackedSplats or ExtSplats
  const n = splats ? splats.numSplats : 0;
  const stride = Math.max(1, Math.ceil(n / MAX_SAMPLES));
  const all = [[], [], []];
  const opaque = [[], [], []];
  for (let i = 0; i < n; i += stride) {
    const { center, opacity } = splats.getSplat(i);
    if (!Number.isFinite(center.x + center.y + center.z)) continue;
    const dest = opacity > 0.1 ? opaque : all;
    dest[0].push(center.x);
    dest[1].push(center.y);
    dest[2].push(center.z);
  }
  const sampled = opaque[0].length + all[0].length;
  const pts = opaque[0].length >= Math.max(16, sampled / 20) ? opaque : [0, 1, 2].map((k) => all[k].concat(opaque[k]));
  if (pts[0].length === 0) return { min: [-1, -1, -1], max: [1, 1, 1], center: [0, 0, 0], radius: Math.sqrt(3) };
  const min = [];
  const max = [];
  for (const axis of pts) {
    const sorted = Float64Array.from(axis).sort();
    min.push(sorted[Math.floor(lo * (sorted.length - 1))]);
    max.push(sorted[Math.ceil(hi * (sorted.length - 1))]);
  }
  const center = [0, 1, 2].map((k) => (min[k] + max[k]) / 2);
  const radius = Math.max(Math.hypot(max[0] - min[0], max[1] - min[1], max[2] - min[2]) / 2, 1e-3);
  return { min, max, center, radius };
}

/**
 * The camera distance at which a sphere of `radius` fits the frame whatever the orbit angle:
 * the sphere's silhouette subtends asin(r/d), so it must fit the narrower of the two fields of
 * view. (The fallback when only a centre and radius are known.)
 */
export function fitDistance(radius, fovDeg, aspect, margin = 1.12) {
  const v = THREE.MathUtils.degToRad(fovDeg) / 2;
  const h = Math.atan(Math.tan(v) * aspect);
  return (radius * margin) / Math.sin(Math.min(v, h));
}

/** The eight corners of the box `min`..`max` (arrays of three numbers). */
export function boxCorners(min, max) {
  const out = [];
  for (const x of [min[0], max[0]]) for (const y of [min[1], max[1]]) for (const z of [min[2], max[2]]) out.push(new THREE.Vector3(x, y, z));
  return out;
}

// Enough centres to find the outline within a pixel or two at phone sizes; cheap enough to
// fit again on every resize.
const OUTLINE_SAMPLES = 8192;
const OUTLINE_SLACK = 0.1;

/**
 * A sample of the object's reasonably opaque centres near the box `min`..`max` (the robust
 * bounds grown by OUTLINE_SLACK of their size each way: the object's own rim beyond the 2nd and
 * 98th percentiles stays in, far floaters stay out), in the box's frame: `toBox` turns the data
 * into it. Fitting these rather than the box's corners frames a rounded object by its outline (a
 * vase's corners stand a third wider than the vase seen from 30°).
 */
export function outlinePoints(mesh, toBox, min, max, limit = OUTLINE_SAMPLES) {
  const splats = mesh.splats || mesh.packedSplats;
  const n = splats ? splats.numSplats : 0;
  const stride = Math.max(1, Math.ceil(n / limit));
  const lo = min.map((v, k) => v - OUTLINE_SLACK * (max[k] - min[k]));
  const hi = max.map((v, k) => v + OUTLINE_SLACK * (max[k] - min[k]));
  const reachCap = 0.05 * Math.hypot(max[0] - min[0], max[1] - min[1], max[2] - min[2]);
  const out = [];
  for (let i = 0; i < n; i += stride) {
    const { center, scales, opacity } = splats.getSplat(i);
    if (!(opacity > 0.1)) continue;
    const p = center.clone().applyQuaternion(toBox);
    if (p.x < lo[0] || p.y < lo[1] || p.z < lo[2] || p.x > hi[0] || p.y > hi[1] || p.z > hi[2]) continue;
    // how far the splat's bright core reaches beyond its centre (one standard deviation)
    p.reach = Math.min(Math.max(scales.x, scales.y, scales.z), reachCap);
    out.push(p);
  }
  return out;
}

// Room left around the object's outline: its centres stay inside 1/FIT_MARGIN of the frame on
// the binding axis (the splats around them reach a little further).
export const FIT_MARGIN = 1.12;

/**
 * The camera distance at which `points` (the object's outline points or its box's corners,
 * relative to the orbit centre, world frame; a point's `reach` is how far its splat extends
 * beyond it) fit both
 * axes of the frame, seen from `dir` (unit vector from the centre towards the camera, +Y up).
 *
 * A bounding sphere fitted to the narrower field of view leaves a tall object at under half
 * the height of a portrait phone: the horizontal field is the narrower one there, and the
 * sphere is as wide as the object is long. Fitting the projected points instead lets the
 * object fill whichever axis it meets first. Exact under perspective: a corner at depth z in
 * front of the camera projects to x/z, y/z, so it fits once z >= |x|/tan(hfov/2) and
 * z >= |y|/tan(vfov/2).
 */
export function fitBoxDistance(points, dir, fovDeg, aspect, margin = FIT_MARGIN) {
  const ty = Math.tan(THREE.MathUtils.degToRad(fovDeg) / 2) / margin;
  const tx = ty * aspect;
  const back = dir.clone().normalize();
  const forward = back.clone().negate();
  const right = new THREE.Vector3().crossVectors(forward, new THREE.Vector3(0, 1, 0));
  if (right.lengthSq() < 1e-12) right.set(1, 0, 0); // straight above or below
  right.normalize();
  const up = new THREE.Vector3().crossVectors(right, forward);
  let d = 0;
  let reach = 0;
  for (const p of points) {
    const pad = p.reach || 0;
    const toward = p.dot(back) + pad; // how far the point stands out towards the camera
    reach = Math.max(reach, p.length() + pad);
    d = Math.max(d, toward + (Math.abs(p.dot(right)) + pad) / tx, toward + (Math.abs(p.dot(up)) + pad) / ty);
  }
  return Math.max(d, reach * 1.05, 1e-3); // never inside the object
}

/** The unit vector from the orbit centre towards a camera at (azimuth, elevation) degrees. */
export function orbitDirection(azimuthDeg, elevationDeg) {
  const az = THREE.MathUtils.degToRad(azimuthDeg);
  const el = THREE.MathUtils.degToRad(elevationDeg);
  return new THREE.Vector3(Math.cos(el) * Math.sin(az), Math.sin(el), Math.cos(el) * Math.cos(az));
}

// The opening side when nothing says where the object's front is (libs/viewer/opening.py has
// the same rule and says why): the side whose gaussians are most often fine (reasonably opaque,
// at most the median size) — a share, not a count, which would follow the object's shape: a side
// the capture saw well is resolved into small splats, one it saw little into large blurs.
const STEEP = Math.tan(THREE.MathUtils.degToRad(75)); // straight above or below: no side
const DETAIL_SAMPLES = 16384; // ~10 ms between the file's arrival and the first frame
const DETAIL_LEAD = 1.1; // the side's share of fine gaussians against the whole object's

/** The azimuth (degrees, upright frame, 0 = from +Z) whose side has the finest detail, or null. */
export function detailAzimuth(mesh, upright, center) {
  const splats = mesh.splats || mesh.packedSplats;
  const n = splats ? splats.numSplats : 0;
  const stride = Math.max(1, Math.ceil(n / DETAIL_SAMPLES));
  const c = new THREE.Vector3(...center);
  const p = new THREE.Vector3();
  const degrees = [];
  const sizes = [];
  for (let i = 0; i < n; i += stride) {
    const { center: at, scales, opacity } = splats.getSplat(i);
    if (!(opacity > 0.1) || !Number.isFinite(at.x + at.y + at.z)) continue;
    p.copy(at).applyQuaternion(upright).sub(c);
    const h = Math.hypot(p.x, p.z);
    if (h === 0 || Math.abs(p.y) > h * STEEP) continue;
    degrees.push(THREE.MathUtils.radToDeg(Math.atan2(p.x, p.z)));
    sizes.push(Math.max(scales.x, scales.y, scales.z));
  }
  if (degrees.length < 16) return null;
  const median = Float64Array.from(sizes).sort()[Math.floor((sizes.length - 1) / 2)];
  const all = new Float64Array(360);
  const fine = new Float64Array(360);
  let fineCount = 0;
  degrees.forEach((d, i) => {
    const bin = ((Math.round(d) % 360) + 360) % 360;
    all[bin]++;
    if (sizes[i] <= median) {
      fine[bin]++;
      fineCount++;
    }
  });
  const everything = sideScores(all);
  const fineScores = sideScores(fine);
  const most = Math.max(...everything.values());
  let best = -1;
  let bestShare = 0;
  everything.forEach((total, deg) => {
    // sides with few gaussians (an edge-on flat object) give noisy shares: they do not compete
    const share = total >= 0.2 * most ? fineScores.get(deg) / total : 0;
    if (share > bestShare) {
      bestShare = share;
      best = deg;
    }
  });
  return best >= 0 && bestShare >= DETAIL_LEAD * (fineCount / degrees.length) ? best : null;
}

/**
 * Side centre (degrees, every 5°, as opening.py: one model's files, quantised differently per
 * format, agree) -> the weight of a by-the-degree histogram towards it, smoothed by a cos²
 * kernel half a turn wide so that the peak of an even arc is its middle.
 */
function sideScores(bins) {
  const kernel = Array.from({ length: 179 }, (_, k) => Math.cos(THREE.MathUtils.degToRad(k - 89)) ** 2);
  const scores = new Map();
  for (let deg = 0; deg < 360; deg += 5) {
    let score = 0;
    for (let k = 0; k < kernel.length; k++) score += kernel[k] * bins[(deg + k - 89 + 360) % 360];
    scores.set(deg, score);
  }
  return scores;
}
