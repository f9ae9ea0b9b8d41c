// Turning the camera around the object: drags, pinch, wheel, keys and the slow auto-rotation.
//
// The camera sits on a sphere around the object's centre: azimuth (about +Y, 0 = looking from
// +Z), elevation (above the horizon) and distance. Input moves a *goal*; the camera follows it
// in time, not in frames, so a software renderer drawing 3 frames a second lands on the same view
// as a GPU drawing 60 (and an idle viewer stops drawing once it is there).
//
// Rates (docs/viewer.md says why):
//   - a drag across the whole canvas is one full turn: 360° / canvas width per pixel (0.45°/px on
//     an 800-px embed, so a 200-px flick shows the next side, a quarter turn), kept between 0.2
//     and 0.9°/px so that very wide or very narrow embeds stay controllable;
//   - elevation moves at a quarter of that rate: shoppers drag sideways to turn a product, and
//     the vertical part of a sideways drag must not tip the camera over the top;
//   - the camera follows the goal with a ~60 ms exponential lag and, after a quick release,
//     glides on with the release speed, decaying with a 120 ms time constant (at most 30°): the
//     smooth-but-responsive feel of model-viewer, which shoppers know from product pages.
import * as THREE from "three";

export const ORBIT = Object.freeze({
  turnsPerWidth: 1,
  minDegPerPx: 0.2,
  maxDegPerPx: 0.9,
  elevationShare: 0.25,
  followMs: 60,
  glideMs: 120,
  maxGlideDeg: 30,
  releaseWindowMs: 80, // movement older than this at release is not a flick
  keyAzimuthDeg: 15,
  keyElevationDeg: 6,
  keyZoom: 1.15,
  wheelZoomPerPx: 0.0015, // distance × e^(0.0015 · deltaY): a wheel notch (100 px) ≈ ×1.16
});

const DEG = Math.PI / 180;
const EPS = 1e-5;

const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

export class OrbitController {
  /**
   * @param {HTMLElement} element  receives pointer, wheel and key events (focusable)
   * @param {{onStart?: () => void, onChange?: () => void}} hooks
   */
  constructor(element, { onStart = () => {}, onChange = () => {} } = {}) {
    this.element = element;
    this.onStart = onStart;
    this.onChange = onChange;
    this.center = new THREE.Vector3();
    this.view = { azimuth: 0, elevation: 0, distance: 1 }; // radians, world units
    this.goal = { ...this.view };
    this.velocity = { azimuth: 0, elevation: 0 }; // radians per ms, the glide after a flick
    this.limits = { minElevation: -Math.PI / 2, maxElevation: Math.PI / 2, minDistance: 0, maxDistance: Infinity };
    this.zoom = true;
    this.autoRotateDegPerSec = 0;
    this._last = null; // time of the previous update while moving
    this._pointers = new Map(); // pointerId -> {x, y}
    this._trail = []; // recent [time, dAzimuth, dElevation] of the dragging pointer
    this._motionQuery = typeof matchMedia === "function" ? matchMedia("(prefers-reduced-motion: reduce)") : null;
    this._onMotionPref = () => this.onChange();
    this._motionQuery?.addEventListener?.("change", this._onMotionPref);
    this._listeners = [
      ["pointerdown", (e) => this._down(e)],
      ["pointermove", (e) => this._move(e)],
      ["pointerup", (e) => this._up(e)],
      ["pointercancel", (e) => this._up(e)],
      ["wheel", (e) => this._wheel(e), { passive: false }],
      ["keydown", (e) => this._key(e)],
    ];
    for (const [type, fn, opts] of this._listeners) element.addEventListener(type, fn, opts);
  }

  dispose() {
    for (const [type, fn, opts] of this._listeners) this.element.removeEventListener(type, fn, opts);
    this._motionQuery?.removeEventListener?.("change", this._onMotionPref);
  }

  /** True when the visitor asked their system for less motion: no auto-rotation, no glide. */
  get reducedMotion() {
    return Boolean(this._motionQuery && this._motionQuery.matches);
  }

  get autoRotating() {
    return this.autoRotateDegPerSec !== 0 && !this.reducedMotion;
  }

  /** Degrees of azimuth per pixel of drag on this canvas. */
  degPerPx() {
    const width = this.element.clientWidth || 300;
    return clamp((360 * ORBIT.turnsPerWidth) / width, ORBIT.minDegPerPx, ORBIT.maxDegPerPx);
  }

  /** Jump (no animation) to the view of `camera` looking at `center`. */
  jumpTo(camera, center) {
    this.center.copy(center);
    const rel = camera.position.clone().sub(center);
    const d = Math.max(rel.length(), EPS);
    this.view = {
      azimuth: Math.atan2(rel.x, rel.z),
      elevation: Math.asin(clamp(rel.y / d, -1, 1)),
      distance: d,
    };
    this.goal = { ...this.view };
    this.velocity = { azimuth: 0, elevation: 0 };
    this._last = null;
  }

  /** The limits a visitor moves within; a saved view outside them stays until the visitor moves. */
  setLimits({ minElevation, maxElevation, minDistance, maxDistance }) {
    this.limits = { minElevation, maxElevation, minDistance, maxDistance };
    const before = this.view.distance;
    this.goal.distance = clamp(this.goal.distance, minDistance, maxDistance);
    this.view.distance = clamp(this.view.distance, minDistance, maxDistance);
    return this.view.distance !== before; // whether the camera must move
  }

  /** True while the camera is still on its way (or auto-rotating): the caller keeps drawing. */
  get moving() {
    return this.autoRotating || this._offGoal() || this._gliding();
  }

  /** Advance to `now` (ms) and place `camera`; returns whether it moved. */
  update(camera, now = performance.now()) {
    if (!this.moving) {
      this._last = null;
      return false;
    }
    const dt = this._last === null ? 16 : clamp(now - this._last, 0, 250);
    this._last = now;
    if (this.autoRotating && this._pointers.size === 0) {
      this.goal.azimuth += this.autoRotateDegPerSec * DEG * (dt / 1000);
    }
    if (this._gliding()) {
      // the exact integral of a velocity decaying as e^(-t/τ) over dt: frame-rate independent
      const tau = ORBIT.glideMs;
      const k = Math.exp(-dt / tau);
      this._nudge(this.velocity.azimuth * tau * (1 - k), this.velocity.elevation * tau * (1 - k));
      this.velocity.azimuth *= k;
      this.velocity.elevation *= k;
      if (!this._gliding()) this.velocity = { azimuth: 0, elevation: 0 };
    }
    const follow = 1 - Math.exp(-dt / ORBIT.followMs);
    for (const key of ["azimuth", "elevation", "distance"]) {
      const gap = this.goal[key] - this.view[key];
      // close enough: land exactly, so a resting camera never moves by a rounding error
      const scale = key === "distance" ? this.goal.distance : 1;
      this.view[key] = Math.abs(gap) < EPS * scale ? this.goal[key] : this.view[key] + gap * follow;
    }
    this.place(camera);
    return true;
  }

  /** Put `camera` where the current view says. */
  place(camera) {
    const { azimuth, elevation, distance } = this.view;
    const dir = new THREE.Vector3(
      Math.cos(elevation) * Math.sin(azimuth),
      Math.sin(elevation),
      Math.cos(elevation) * Math.cos(azimuth),
    );
    camera.position.copy(this.center).addScaledVector(dir, distance);
    camera.up.set(0, 1, 0);
    camera.lookAt(this.center);
    camera.updateMatrixWorld();
  }

  // ---- input --------------------------------------------------------------------------------

  _offGoal() {
    const g = this.goal;
    const v = this.view;
    return g.azimuth !== v.azimuth || g.elevation !== v.elevation || g.distance !== v.distance;
  }

  _gliding() {
    return Math.abs(this.velocity.azimuth) + Math.abs(this.velocity.elevation) > 1e-6;
  }

  _started() {
    this.velocity = { azimuth: 0, elevation: 0 };
    this.onStart();
  }

  /** Move the goal by (dAzimuth, dElevation) radians, within the elevation limits. */
  _nudge(dAz, dEl) {
    this.goal.azimuth += dAz;
    // a saved view beyond the limits is kept; moving may only bring it back towards them
    const lo = Math.min(this.limits.minElevation, this.goal.elevation);
    const hi = Math.max(this.limits.maxElevation, this.goal.elevation);
    this.goal.elevation = clamp(this.goal.elevation + dEl, lo, hi);
    this.onChange();
  }

  _zoomBy(factor) {
    if (!this.zoom) return;
    const { minDistance, maxDistance } = this.limits;
    this.goal.distance = clamp(this.goal.distance * factor, minDistance, maxDistance);
    this.onChange();
  }

  _down(e) {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    this.element.setPointerCapture?.(e.pointerId);
    this._pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    this._trail = [];
    this._started();
  }

  _move(e) {
    const p = this._pointers.get(e.pointerId);
    if (!p) return;
    const dx = e.clientX - p.x;
    const dy = e.clientY - p.y;
    const before = this._pinchSpan();
    p.x = e.clientX;
    p.y = e.clientY;
    if (this._pointers.size >= 2) {
      const after = this._pinchSpan();
      if (before > 0 && after > 0) this._zoomBy(before / after); // fingers apart: closer
      return;
    }
    const rate = this.degPerPx() * DEG;
    // dragging right turns the object to the right (the camera goes left); down looks from higher
    const dAz = -dx * rate;
    const dEl = dy * rate * ORBIT.elevationShare;
    this._nudge(dAz, dEl);
    const now = e.timeStamp || performance.now();
    this._trail.push([now, dAz, dEl]);
    while (this._trail.length && now - this._trail[0][0] > ORBIT.releaseWindowMs) this._trail.shift();
  }

  _up(e) {
    if (!this._pointers.delete(e.pointerId)) return;
    this.element.releasePointerCapture?.(e.pointerId);
    if (this._pointers.size > 0 || this.reducedMotion) return;
    // a flick: the speed over the last moments of the drag carries on, decaying
    const now = e.timeStamp || performance.now();
    const recent = this._trail.filter(([t]) => now - t <= ORBIT.releaseWindowMs);
    this._trail = [];
    if (recent.length < 2) return;
    const span = Math.max(now - recent[0][0], 8);
    let az = recent.reduce((s, r) => s + r[1], 0) / span;
    let el = recent.reduce((s, r) => s + r[2], 0) / span;
    // the glide adds v·τ in all: keep it within the cap
    const travel = Math.hypot(az, el) * ORBIT.glideMs;
    const cap = ORBIT.maxGlideDeg * DEG;
    if (travel > cap) {
      az *= cap / travel;
      el *= cap / travel;
    }
    this.velocity = { azimuth: az, elevation: el };
    this.onChange();
  }

  _pinchSpan() {
    if (this._pointers.size < 2) return 0;
    const [a, b] = [...this._pointers.values()];
    return Math.hypot(a.x - b.x, a.y - b.y);
  }

  _wheel(e) {
    if (!this.zoom) return; // let the page scroll
    e.preventDefault();
    const px = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaMode === 2 ? e.deltaY * 400 : e.deltaY;
    this._started();
    this._zoomBy(Math.exp(clamp(px, -400, 400) * ORBIT.wheelZoomPerPx));
  }

  _key(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const az = ORBIT.keyAzimuthDeg * DEG;
    const el = ORBIT.keyElevationDeg * DEG;
    const moves = {
      ArrowLeft: () => this._nudge(az, 0),
      ArrowRight: () => this._nudge(-az, 0),
      ArrowUp: () => this._nudge(0, el),
      ArrowDown: () => this._nudge(0, -el),
      "+": () => this._zoomBy(1 / ORBIT.keyZoom),
      "=": () => this._zoomBy(1 / ORBIT.keyZoom),
      "-": () => this._zoomBy(ORBIT.keyZoom),
      _: () => this._zoomBy(ORBIT.keyZoom),
      PageUp: () => this._zoomBy(1 / ORBIT.keyZoom),
      PageDown: () => this._zoomBy(ORBIT.keyZoom),
    };
    const move = moves[e.key];
    if (!move) return;
    if (!this.zoom && !e.key.startsWith("Arrow")) return; // the others zoom
    e.preventDefault(); // arrows and page keys would scroll the host page
    this._started();
    move();
  }
}
