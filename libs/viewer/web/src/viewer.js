// <foto3d-viewer>: shows one Gaussian splat, framed and upright, with no settings needed.
//
// Where the model comes from (first that applies):
//   src="model.spz" [config="viewer.json" | config='{"background": "#fff"}'] [format="spz"] [poster=...]
//   model="OBJECT_ID" api="https://gateway" key="pk_..."   -> GET {api}/v1/models/{id}?key=...&formats=...
//     [analytics="off"]: no beacon (by default one goes to POST {api}/v1/beacon; beacon.js)
//   either way [max-splats="N" | "none"]: the splat budget instead of the device class's (budget.js)
// The element reflects what it is doing in its `state` attribute: loading, ready, unavailable.
import * as THREE from "three";
import { SplatMesh } from "@sparkjsdev/spark";
import { BatchedSparkRenderer } from "./batched.js";
import { checkConfig } from "./config.js";
import FORMAT_TABLE from "./formats.json";
import {
  boxCorners, detailAzimuth, fitBoxDistance, fitDistance, orbitDirection, outlinePoints, robustBounds, upForFormat,
  uprightQuaternion,
} from "./framing.js";
import { STYLE } from "./style.js";
import { warmUpSplatPipeline } from "./warmup.js";
import { openDownload } from "./download.js";
import { BeaconQueue } from "./beacon.js";
import { FULLSCREEN_ICON } from "./icons.js";
import { OrbitController } from "./orbit.js";
import { recordedUp } from "./plyheader.js";
import { shDegree } from "./shdegree.js";
import { sparkWasmReady } from "./sparkwasm.js";
import { applySplatBudget, chooseBudget, splatGpuBytes } from "./budget.js";

export const VERSION = typeof __FOTO3D_VIEWER_VERSION__ === "string" ? __FOTO3D_VIEWER_VERSION__ : "dev";

// Formats by the splat format registry's names (formats.json, written from it), in the order we
// would rather fetch them (smallest per gaussian first), and how Spark is told to parse each.
const SPARK_TYPES = { spz: "spz", sog: "pcsogszip", "compressed-ply": "ply", ply: "ply", splat: "splat" };
export const FORMATS = FORMAT_TABLE.order;
// Longest suffix first, so that ".compressed.ply" wins over ".ply".
const BY_SUFFIX = Object.entries(FORMAT_TABLE.formats)
  .map(([name, f]) => [f.suffix, name])
  .sort((a, b) => b[0].length - a[0].length);

const DEFAULTS = {
  background: "#eef0f3",
  fov: 40,
  azimuth: 30,
  elevation: 18,
  distance: 1,
  // Elevation stays between a little below the horizon and well above it: past ~60° a product
  // is seen from the top, a shape without its face (docs/viewer.md).
  limits: { min_distance: 0.55, max_distance: 2, min_elevation: -20, max_elevation: 60, zoom: true },
  autoRotateDegPerSec: 12,
  ui: { fullscreen: true, progress: true, poster: true, hotspots: true },
};

// Input within this many ms counts as moving (below the waking window, _wake's 500 ms).
const INTERACTION_MS = 250;
const MOVING_PIXEL_RATIO = 1;
// Adaptive resolution while the picture moves (_matchPixelRatio): device pixels per CSS pixel
// it steps down through when frames come slower than SLOW_FRAME_MS apart, and back up when they
// come faster than FAST_FRAME_MS (FAST_RUN in a row). A still picture is always drawn at the screen's own ratio.
const MOVING_PIXEL_RATIOS = [1, 0.75, 0.5];
const SLOW_FRAME_MS = 70;
const FAST_FRAME_MS = 30;
const FAST_RUN = 10;
// When the picture stops moving, the sharp frame (the screen's own ratio) waits for a pause in
// the visitor's input of REST_HOLD times what the last sharp frame cost (at least INTERACTION_MS,
// at most REST_HOLD_MAX_MS), and for the sort of the last view (_sharpWaits).
const REST_HOLD = 2;
const REST_HOLD_MAX_MS = 1500;

const log = (...args) => console.error("foto3d-viewer:", ...args);

// Phases of the first frame, as performance marks ("foto3d:NAME", ms since navigation) that
// bench/bench_viewer.py reads back: where the time to the first picture goes.
const mark = (name) => performance.mark(`foto3d:${name}`);
mark("module");

function formatOf(url) {
  const path = url.split(/[?#]/)[0].toLowerCase();
  const hit = BY_SUFFIX.find(([suffix]) => path.endsWith(suffix));
  return hit ? hit[1] : "ply";
}

class Foto3dViewer extends HTMLElement {
  static observedAttributes = ["background", "auto-rotate"];

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this.state = "idle";
    this.config = {};
    this.configErrors = [];
    this.framesRendered = 0;
    this._sortListeners = new Set(); // called whenever the renderer says a frame is due (e.g. a sort is back)
    this._awakeUntil = 0; // performance.now() until which the render loop keeps running
    this._lastFrameAt = 0;
    this._drawnAt = 0; // when the loop's previous tick drew (0: it did not, or the loop stopped)
    this._slowness = 0; // steps down MOVING_PIXEL_RATIOS that moving frames take (adaptive resolution)
    this.timings = {}; // milliseconds since the page started loading
  }

  connectedCallback() {
    if (this._built) return;
    this._built = true;
    this.shadowRoot.innerHTML = `<style>${STYLE}</style>
      <div class="stage" part="stage">
        <canvas part="canvas" tabindex="0" role="img"
          aria-label="3D view: drag or use the arrow keys to turn it, + and - to zoom"></canvas>
        <img class="poster" part="poster" alt="" hidden>
        <div class="hotspots"></div>
        <div class="progress" part="progress" hidden><div class="bar"></div></div>
        <button class="fullscreen" part="fullscreen" type="button" title="Full screen" aria-label="Full screen" hidden>${FULLSCREEN_ICON}</button>
        <div class="card" part="card" role="status" hidden><strong>Not available</strong><span>This model cannot be shown right now.</span></div>
      </div>`;
    const $ = (sel) => this.shadowRoot.querySelector(sel);
    this.$ = { stage: $(".stage"), canvas: $("canvas"), poster: $(".poster"), progress: $(".progress"),
      bar: $(".bar"), fullscreen: $(".fullscreen"), card: $(".card"), hotspots: $(".hotspots") };
    this.$.fullscreen.addEventListener("click", () => this.toggleFullscreen());
    this._startBeacon();
    this._showPoster(this.getAttribute("poster"));
    this._setState("loading");
    mark("connected");
    this._start().catch((err) => {
      log(err && err.message ? err.message : err);
      this._unavailable("load_failed");
    });
  }

  /** Analytics for models from the gateway (beacon.js): no cookie, nothing about the visitor. */
  _startBeacon() {
    const api = this.getAttribute("api");
    const model = this.getAttribute("model");
    if (this._beacon || !api || !model || this.getAttribute("analytics") === "off") return;
    const key = this.getAttribute("key");
    const url = `${api.replace(/\/+$/, "")}/v1/beacon${key ? `?${new URLSearchParams({ key })}` : ""}`;
    this._beacon = new BeaconQueue(url, model);
    this._beacon.view();
    this._beacon.attach(this);
  }

  disconnectedCallback() {
    if (this._beacon) this._beacon.detach();
    this._beacon = null;
    this._stopLoop();
    if (this._resizeObserver) this._resizeObserver.disconnect();
    if (this.controls) this.controls.dispose();
    if (this.mesh) this.mesh.dispose();
    if (this.renderer) this.renderer.dispose();
    this._built = false;
  }

  attributeChangedCallback(name) {
    if (!this.scene) return;
    this._wake();
    if (name === "background") this._applyBackground();
    if (name === "auto-rotate") this._applyAutoRotate();
  }

  // ---- where the model comes from -------------------------------------------------------

  async _start() {
    const src = this.getAttribute("src");
    let files;
    let rawConfig;
    if (src) {
      files = [{ url: src, format: this.getAttribute("format") || formatOf(src) }];
      rawConfig = await this._readConfigAttribute();
    } else if (this.getAttribute("model") && this.getAttribute("api")) {
      const answer = await this._fetchModel();
      if (!answer) return this._unavailable(this._modelError || "model_unavailable");
      files = answer.files || [];
      rawConfig = answer.config;
      if (answer.poster_url) this._showPoster(answer.poster_url);
    } else {
      log('give either src="…" or model="…" api="…" key="…"');
      return this._unavailable("no_source");
    }
    const { config, errors } = checkConfig(rawConfig);
    this.config = config;
    this.configErrors = errors;
    for (const e of errors) log(`config: ${e}`);
    if (!this.getAttribute("poster") && this.config.thumbnail) this._showPoster(this.config.thumbnail);
    const file = files.find((f) => f && typeof f.url === "string" && SPARK_TYPES[f.format]);
    if (!file) {
      log(`no file in a format this viewer reads (${FORMATS.join(", ")})`);
      return this._unavailable("no_format");
    }
    this.file = file;
    await this._show(file);
  }

  async _readConfigAttribute() {
    const value = (this.getAttribute("config") || "").trim();
    if (!value) return undefined;
    try {
      if (value.startsWith("{")) return JSON.parse(value);
      const resp = await fetch(new URL(value, document.baseURI), { credentials: "omit" });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      return JSON.parse(await resp.text());
    } catch (err) {
      log(`config "${value.slice(0, 80)}" cannot be read (${err.message}); showing the model with defaults`);
      return undefined;
    }
  }

  async _fetchModel() {
    const base = this.getAttribute("api").replace(/\/+$/, "");
    const id = encodeURIComponent(this.getAttribute("model"));
    const params = new URLSearchParams({ formats: (this.getAttribute("formats") || FORMATS.join(",")) });
    const key = this.getAttribute("key");
    if (key) params.set("key", key);
    const url = `${base}/v1/models/${id}?${params}`;
    // The page's inline early fetch (libs/viewer/assets.py) may have asked already, while this
    // bundle was loading: take its answer, and its download of the model file, once.
    const early = this.foto3dEarly && this.foto3dEarly.url === url ? this.foto3dEarly : null;
    this.foto3dEarly = null;
    this._earlyFile = early ? early.file.catch(() => null) : null;
    if (early) mark("early-fetch");
    const resp = await (early ? early.api : fetch(url, { credentials: "omit" }));
    if (!resp.ok) {
      log(`model ${this.getAttribute("model")}: not available (HTTP ${resp.status})`);
      this._modelError = `http_${resp.status}`;
      return null;
    }
    const body = await resp.json();
    if (!body || !Array.isArray(body.files)) {
      log("the model answer has no file list");
      return null;
    }
    return body;
  }

  // ---- the scene -------------------------------------------------------------------------

  async _show(file) {
    // The download starts first: everything below happens while it is under way.
    const format = FORMAT_TABLE.formats[file.format];
    const early = this._earlyFile ? await this._earlyFile : null;
    this._earlyFile = null;
    const download = openDownload(file.url, {
      response: early && early.url === file.url ? early.response : null, // already under way
      onProgress: (loaded, total) => this._progress(loaded, total),
    });
    // Spark's WebAssembly comes as a file of its own (sparkwasm.js): without it Spark would wait
    // for ever, so a failed fetch shows the card instead.
    sparkWasmReady().catch((err) => {
      log(err && err.message ? err.message : err);
      this._unavailable("load_failed");
    });
    // Spark decodes in a worker it starts now, while the bytes are on their way; a model over
    // this device's splat budget keeps its most important splats before any reach the GPU.
    this.splats = chooseBudget(this.getAttribute("max-splats"));
    this.mesh = new SplatMesh({
      stream: download.stream,
      fileType: SPARK_TYPES[file.format],
      fileName: `model${format.suffix}`,
      lod: false,
      onLoad: (mesh) => this._applyBudget(mesh),
    });
    const canvas = this.$.canvas;
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: false });
    this._pixelRatio = Math.min(window.devicePixelRatio || 1, 2);
    this.renderer.setPixelRatio(this._pixelRatio);
    this.scene = new THREE.Scene();
    this.spark = new BatchedSparkRenderer({
      renderer: this.renderer,
      enableLod: false, // one object of at most a few million splats: no level-of-detail tree to build
      // A sort finished: draw it, once. Each sort ends in its own call, so nothing is missed, and
      // a still view costs one frame per sort, not a fixed run of frames (~0.4 s each in software).
      onDirty: () => {
        for (const listener of [...this._sortListeners]) listener();
        this._wake(0);
      },
    });
    this.scene.add(this.spark);
    mark("renderer");
    const cam = this.config.camera || {};
    this.camera = new THREE.PerspectiveCamera(cam.fov || DEFAULTS.fov, 1, 0.01, 1000);
    this.model = new THREE.Group();
    this.scene.add(this.model);
    this._applyBackground();
    this._resize();
    this._resizeObserver = new ResizeObserver(() => this._resize());
    this._resizeObserver.observe(this);

    this._progress(0, 0);
    // While the file streams, only the warm-up draws (the poster and progress bar are plain
    // DOM): it builds the pipeline the first frame needs; anything else drawn would delay it.
    // The warm-up's first draw holds this thread while the pipeline links: after the poster,
    // which is what a visitor sees first (the download is under way meanwhile).
    let warm = true;
    const loaded = this.mesh.initialized.then(() => null, () => null);
    // The SH degree the file's first bytes declare (null when they do not say), for the warm-up.
    const headShDegree = download.head.then((head) => shDegree(file.format, head), () => null);
    headShDegree.then((degree) => {
      this.headShDegree = degree;
    });
    const warming = Promise.race([this._posterSettled(), loaded]).then(() => warmUpSplatPipeline({
      renderer: this.renderer,
      scene: this.scene,
      camera: this.camera,
      color: new THREE.Color(colorToHex(this._background())),
      sorted: () => this._sortSettled(() => !warm),
      wanted: () => warm,
      // what the file's first bytes say, unless the whole model is in first
      shDegree: Promise.race([headShDegree, loaded]),
    }))
      .then(() => mark("warm"))
      .catch((err) => log(`warm-up: ${err && err.message ? err.message : err}`));
    try {
      // a failed download (refused by the bucket's CORS rule, say) ends the wait with its error
      await Promise.all([this.mesh.initialized, download.done]);
      this.timings.loaded = performance.now();
      mark("loaded");
      this._recordedUp = format.recorded ? recordedUp(await download.head) : null;
    } finally {
      warm = false;
      for (const listener of [...this._sortListeners]) listener();
      await warming;
    }
    this.model.add(this.mesh);
    this._setState("framing");
    this._frame();
    this._framedAt = performance.now();
    mark("framed");
    this._wake();
  }

  /** Trims the decoded model to the splat budget (budget.js); `this.splats` says what happened. */
  async _applyBudget(mesh) {
    mark("decoded");
    const done = await applySplatBudget(mesh, this.splats.budget);
    this.splats = { ...this.splats, ...done, gpuBytes: splatGpuBytes(mesh.packedSplats) };
    if (done.trimmed) {
      mark("budget");
      console.info(`foto3d-viewer: ${done.total} splats, kept the ${done.kept} most important`
        + ` (${this.splats.deviceClass} budget ${this.splats.budget}) in ${Math.round(done.ms)} ms`);
    }
  }

  // Render on demand: a splat costs a full sort and draw per frame, so an idle viewer stops
  // drawing (no CPU or battery spent on a still picture) and wakes on input, resize, config or
  // auto-rotate. It keeps drawing a little after input; Spark's sort (in a worker, one frame
  // behind) wakes it once more when the sorted order for the last view is ready.
  _wake(ms = 500) {
    if (this.state === "loading") return;
    // Before the first picture the loop runs anyway (until a sorted frame is drawn); a waking
    // window then would only add full frames after it, each delaying anything else the page does.
    if (this.state === "ready") this._awakeUntil = Math.max(this._awakeUntil, performance.now() + ms);
    this._frameDue = true;
    if (this._looping || !this.renderer) return;
    this._looping = true;
    this._nextFrame();
  }

  // The loop is the viewer's own, one animation-frame request at a time, not three.js's
  // setAnimationLoop: that one, stopped from inside its own callback (as an idle viewer stops),
  // still asks for the next frame, and starting it again adds a second chain of requests; each
  // rest then woken made one more, and every frame was drawn once per chain (twice, three
  // times ...: under software WebGL each copy a whole frame of rasteriser time).
  _nextFrame() {
    if (this._frameRequest) return; // one request at a time
    this._frameRequest = requestAnimationFrame(() => {
      this._frameRequest = null;
      this._tick();
      if (this._looping) this._nextFrame();
    });
  }

  _stopLoop() {
    this._looping = false;
    if (this._frameRequest) cancelAnimationFrame(this._frameRequest);
    this._frameRequest = null;
  }

  _tick() {
    // Before the first picture, draw only when something asks (the framing, a sort that came
    // back): frames in between showed nothing new, yet each queued a full draw — for a model
    // with view-dependent colour a regeneration of every splat too — ahead of the first real
    // one (a 500k-splat model's first frame came one whole software frame, ~2 s, later). Once
    // a second, in case a wake was missed.
    const now = performance.now();
    if (this.state === "framing" && !this._frameDue && now - this._lastFrameAt < 1000) {
      this._drawnAt = 0;
      return;
    }
    // The previous tick drew: this one comes when that frame is done, so the gap is its cost.
    if (this.state === "ready" && this._drawnAt) this._noteFrameCost(now - this._drawnAt);
    this._drawnAt = 0;
    const due = this._frameDue;
    this._frameDue = false;
    const moved = Boolean(this.controls && this.controls.update(this.camera, now));
    if (moved) {
      this._awakeUntil = performance.now() + 600;
      this._movedAt = now;
    }
    if (this.state === "ready" && !moved) {
      // Nothing moved. A frame drawn now would show what is on screen (or a sort that came
      // back) again: each such frame held the page's thread for a whole software frame, and
      // a touch that came meanwhile waited for it. Only the picture at rest is still owed, when
      // the one on screen was drawn for a moving picture (smaller, or a share of the splats).
      this._sortForRest();
      const smaller = this.renderer.getPixelRatio() !== this._pixelRatio;
      const owed = smaller || this._drawnPartial;
      if (owed && this._sharpWaits(now)) return; // the loop keeps running: drawn later
      if (!due && !smaller && !(this._drawnPartial && !this.spark.partialSort)) {
        if (now > this._awakeUntil && !owed) this._stopLoop();
        return;
      }
    }
    this._lastFrameAt = now;
    this._placeHotspots();
    this._matchPixelRatio(now, moved);
    this._drawnAt = now;
    this._drawnRatio = this.renderer.getPixelRatio();
    this._drawnPartial = this.spark.partialSort; // drawn in the order of the last finished sort
    const early = this.state !== "ready";
    if (early) mark("render-start");
    this.renderer.render(this.scene, this.camera);
    if (early) mark("render-end");
    if (this.state === "framing" && this._sortedFrame()) this._ready();
    if (this.state === "ready") this.framesRendered++;
  }

  /**
   * Whether the sharp frame after a movement should wait: the picture on screen was drawn at a
   * moving resolution, and the visitor's input paused for less than twice what a sharp frame
   * costs here (or the sort for the last view is not back yet). On a phone's GPU a sharp frame
   * is a few milliseconds and waits INTERACTION_MS; under software WebGL it is 0.5-1 s of the
   * page's thread, and a visitor who swipes again within that pause (a second flick) found
   * their touch waiting behind it. Nothing is drawn meanwhile: the view has not changed.
   */
  _sharpWaits(now) {
    const paused = now - (this._movedAt ?? -Infinity);
    const hold = Math.min(REST_HOLD_MAX_MS, Math.max(INTERACTION_MS, REST_HOLD * (this._sharpFrameMs || 0)));
    const sorted = !this.spark.sorting && !this.spark.partialSort; // every splat, for this view
    return paused < hold || (!sorted && paused < REST_HOLD_MAX_MS);
  }

  /** At rest every splat is drawn again: a sort for this view with all of them, once. */
  _sortForRest() {
    this.spark.lighterWhileMoving = false;
    if (this.spark.partialSort && !this.spark.sorting) this.spark.sortAgain();
  }

  /** The device pixel ratios a moving picture steps down through, from the screen's own. */
  _ladder() {
    return [this._pixelRatio, ...MOVING_PIXEL_RATIOS.filter((r) => r < this._pixelRatio)];
  }

  /**
   * What the previous frame cost (`interval`, ms at the loop's pace) teaches: slow frames step
   * the moving resolution down at once, a run of fast ones steps it back up (a smaller frame is
   * faster: stepping up after one would swing between two sizes); a sharp frame's cost sets how
   * long the next sharp frame waits for a pause (_sharpWaits). Frames at rest count too, so a
   * slow device's first touch already gets the small frames.
   */
  _noteFrameCost(interval) {
    const ladder = this._ladder();
    this._fastFrames = interval < FAST_FRAME_MS ? (this._fastFrames || 0) + 1 : 0;
    // (one step past the smallest ratio: a share of the splats, _matchPixelRatio)
    if (interval > SLOW_FRAME_MS) this._slowness = Math.min(this._slowness + 1, ladder.length);
    else if (this._fastFrames >= FAST_RUN) {
      this._slowness = Math.max(this._slowness - 1, 0);
      this._fastFrames = 0;
    }
    if (this._drawnRatio === this._pixelRatio) this._sharpFrameMs = interval;
  }

  /**
   * While a visitor's finger (or mouse, wheel, keys) moves the model, draw at most one device
   * pixel per CSS pixel; at rest, at the screen's own ratio again. A splat frame's cost is its
   * pixels: on a phone at 1.75-3× a moving frame cost 3-9× as much, and the next touch waited on
   * it. The sharp picture the visitor rests on comes after the movement (_sharpWaits).
   *
   * Adaptive: while the picture moves (input, a glide, auto-rotation), slow frames
   * (_noteFrameCost) step the ratio down (1, 0.75, 0.5 device pixels per CSS pixel; for
   * auto-rotation from the screen's own ratio first), one step a frame, and a run of fast frames
   * steps it back up. Under software WebGL a moving frame is a long task of the rasteriser: a
   * quarter of the pixels is a shorter wait for the next touch. What it learned is kept for the
   * next gesture.
   */
  _matchPixelRatio(now, moved) {
    const ready = this.state === "ready";
    const touched = ready && now - (this._touchedAt ?? -Infinity) < INTERACTION_MS;
    // (a glide's last step lands the camera and ends `moving`: that frame moved all the same)
    const animating = touched || (ready && (moved || (this.controls && this.controls.moving)));
    const ladder = this._ladder();
    let step = animating ? this._slowness : 0;
    if (touched) step = Math.max(step, ladder.indexOf(Math.min(this._pixelRatio, MOVING_PIXEL_RATIO)));
    const ratio = ladder[Math.min(step, ladder.length - 1)];
    if (this.renderer.getPixelRatio() !== ratio) this.renderer.setPixelRatio(ratio);
    // Still too slow at the smallest ratio (software WebGL, where a frame's cost is mostly its
    // splats, not its pixels): the sorts for the moving picture keep only the most important
    // share of the splats (cpusort.js), so its frames draw that many.
    this.spark.lighterWhileMoving = animating && step >= ladder.length;
  }

  // The frame just drawn showed the splats in sorted order: Spark draws nothing until its first
  // sort is back (frames before that are background only, so the poster stays up). A file whose
  // splats all fall outside the view sorts to none: ready once that sort is done.
  _sortedFrame() {
    // A sort begun since the model was framed has come back (the warm-up's sorts came before).
    return this.spark.sortedFrom >= this._framedAt;
  }

  /** Resolves once no sort is running and one has run, or when `stop()` says so. */
  _sortSettled(stop) {
    return new Promise((resolve) => {
      const check = () => {
        if (!stop() && (this.spark.sorting || !this.spark.lastSortTime)) return;
        this._sortListeners.delete(check);
        resolve();
      };
      this._sortListeners.add(check);
      check();
    });
  }

  /** True when the viewer has stopped drawing (nothing moves, the last sort is on screen). */
  get idle() {
    return !this._looping;
  }

  /** Draw one frame now (for reading the canvas back in the same task, e.g. in tests). */
  renderNow() {
    if (!this.renderer) return;
    if (this.controls) this.controls.update(this.camera);
    this.renderer.render(this.scene, this.camera);
    this._wake();
  }

  _frame() {
    // Frames (proto/viewer.py): the file's data is turned upright (its up axis onto +Y), then by
    // the reviewer's rotation. Bounds and hotspots are upright-frame; camera position/target world.
    // The config's axis, else the file entry's (the publisher's record), else what the file's
    // header says (.ply), else the format's convention.
    const up = this.config.up || this.file.up || this._recordedUp || upForFormat(this.file.format);
    const upright = uprightQuaternion(up);
    const turn = (this.config.rotation || [0, 0, 0]).map((d) => THREE.MathUtils.degToRad(d));
    this.adjust = new THREE.Quaternion().setFromEuler(new THREE.Euler(...turn, "XYZ"));
    this.model.quaternion.copy(this.adjust.clone().multiply(upright));
    this.model.updateMatrixWorld(true);
    let b = this.config.bounds && this.config.bounds.center && this.config.bounds.radius ? this.config.bounds : null;
    if (!b) {
      this._dataBounds = this._dataBounds || robustBounds(this.mesh);
      const c = new THREE.Vector3(...this._dataBounds.center).applyQuaternion(upright);
      b = { ...this._dataBounds, center: c.toArray() };
    }
    this.bounds = b;
    this._upright = upright;
    this.center = new THREE.Vector3(...b.center).applyQuaternion(this.adjust);
    this.radius = b.radius;
    // The object's outline around the centre, world frame: what the framing fits to the screen.
    // Sampled from the file inside the robust box (data-frame for the file's own bounds,
    // upright-frame for a config's); the box's corners when the sample is too thin, the
    // sphere when a config gives only a centre and radius.
    const box = this.config.bounds && this.config.bounds.min && this.config.bounds.max ? this.config.bounds : null;
    if (box || !this.config.bounds) {
      const { min, max } = box || this._dataBounds;
      const toBox = box ? upright : new THREE.Quaternion();
      const turn = box ? this.adjust : this.adjust.clone().multiply(upright);
      const sample = outlinePoints(this.mesh, toBox, min, max);
      const points = sample.length >= 16 ? sample : boxCorners(min, max);
      this.outline = points.map((p) => p.applyQuaternion(turn).sub(this.center));
    } else {
      this.outline = null;
    }
    this._visitorMoved = false;
    this._placeCamera();
    this._applyControls();
    this._applyAutoRotate();
    this.model.updateMatrixWorld(true);
    this.spark.sortOnCpu(this.mesh); // no GPU read-back per sort from here on
  }

  /**
   * The distance at which the object fills the frame, seen from `dir` (from the centre towards
   * the camera; the camera's own direction when not given): its projected box fitted to both
   * axes of the canvas as it is now, so a portrait phone shows a tall object tall.
   */
  _fit(dir) {
    if (!this.outline) return fitDistance(this.radius, this.camera.fov, this.camera.aspect);
    const toward = dir || this.camera.position.clone().sub(this.center);
    if (toward.lengthSq() === 0) toward.set(0, 0, 1);
    return fitBoxDistance(this.outline, toward, this.camera.fov, this.camera.aspect);
  }

  _placeCamera() {
    const cam = this.config.camera || {};
    let fit;
    if (cam.position && cam.target) {
      this.camera.position.set(...cam.position);
      this.center = new THREE.Vector3(...cam.target);
      fit = this._fit();
      this._framing = null; // a saved camera stays where it was saved
    } else {
      const dir = orbitDirection(cam.azimuth ?? this._openingAzimuth(), cam.elevation ?? DEFAULTS.elevation);
      fit = this._fit(dir);
      const d = fit * (cam.distance ?? DEFAULTS.distance);
      this.camera.position.copy(this.center).addScaledVector(dir, d);
      this._framing = { distance: cam.distance ?? DEFAULTS.distance }; // re-fitted on resize
    }
    this._frameFit = fit; // the zoom range's unit
    this.camera.up.set(0, 1, 0);
    this.camera.near = Math.max(fit * 0.01, 0.001);
    this.camera.far = fit * 10 + this.radius * 4;
    this.camera.lookAt(this.center);
    this.camera.updateProjectionMatrix();
  }

  /** Degrees: the side with the most detail, turned with the object by the reviewer's rotation;
   * else the default. (Published configs carry the trainer's choice as camera.position.) */
  _openingAzimuth() {
    // measured once per model, and only when the config names no view
    if (this._detailAzimuth === undefined) this._detailAzimuth = detailAzimuth(this.mesh, this._upright, this.bounds.center);
    if (this._detailAzimuth === null) return DEFAULTS.azimuth;
    const a = THREE.MathUtils.degToRad(this._detailAzimuth);
    const side = new THREE.Vector3(Math.sin(a), 0, Math.cos(a)).applyQuaternion(this.adjust);
    return THREE.MathUtils.radToDeg(Math.atan2(side.x, side.z));
  }

  _limits() {
    return { ...DEFAULTS.limits, ...(this.config.limits || {}) };
  }

  _applyControls() {
    if (!this.controls) {
      // Our own orbit (orbit.js): no panning, so the orbit centre stays the object's centre and
      // it cannot leave the frame; rates and glide are time-based, not per frame.
      this.controls = new OrbitController(this.$.canvas, {
        onStart: () => {
          this.controls.autoRotateDegPerSec = 0;
          this._lastGoal = { ...this.controls.goal }; // what auto-rotation or a glide moved is no gesture
          this._visitorMoved = true; // from now on a resize keeps their view
        },
        onChange: () => {
          this._touchedAt = performance.now();
          this._wake();
          this._countGesture();
        },
      });
    }
    this.controls.jumpTo(this.camera, this.center);
    this._setOrbitLimits();
    this._lastGoal = { ...this.controls.goal };
    // The camera is placed from the orbit's own numbers once, here, before a frame: Spark
    // regenerates every splat of a model with view-dependent colour when the camera moves at all.
    this.controls.place(this.camera);
  }

  /** The orbit's limits from the config and the fit distance; true if they moved the camera. */
  _setOrbitLimits() {
    const lim = this._limits();
    const fit = this._frameFit;
    const minD = Math.min(lim.min_distance, lim.max_distance);
    const maxD = Math.max(lim.min_distance, lim.max_distance);
    // Never inside the object's sphere, whatever the config says.
    const minDistance = Math.max(fit * minD, this.radius * 1.05);
    this.controls.zoom = lim.zoom !== false;
    return this.controls.setLimits({
      minDistance,
      maxDistance: Math.max(fit * maxD, minDistance),
      minElevation: THREE.MathUtils.degToRad(Math.min(lim.min_elevation, lim.max_elevation)),
      maxElevation: THREE.MathUtils.degToRad(Math.max(lim.min_elevation, lim.max_elevation)),
    });
  }

  /** An orbit or a zoom for the beacon: what the visitor's input changed since the last call. */
  _countGesture() {
    const g = this.controls.goal;
    const last = this._lastGoal;
    this._lastGoal = { azimuth: g.azimuth, elevation: g.elevation, distance: g.distance };
    if (!this._beacon || !last) return;
    if (g.distance !== last.distance) this._beacon.interaction("zoom");
    if (g.azimuth !== last.azimuth || g.elevation !== last.elevation) this._beacon.interaction("orbit");
  }

  _applyAutoRotate() {
    if (!this.controls) return;
    const attr = this.getAttribute("auto-rotate");
    let degPerSec = 0;
    if (attr !== null) degPerSec = attr === "" || attr === "true" ? DEFAULTS.autoRotateDegPerSec : Number(attr) || 0;
    else if (this.config.auto_rotate === true) degPerSec = DEFAULTS.autoRotateDegPerSec;
    else if (typeof this.config.auto_rotate === "number") degPerSec = this.config.auto_rotate;
    // a visitor whose system asks for reduced motion gets none (orbit.js checks it live)
    this.controls.autoRotateDegPerSec = degPerSec;
  }

  /** The background colour: the attribute's, else the config's, else the default. */
  _background(quiet = true) {
    const attr = this.getAttribute("background");
    const color = this.config.background || DEFAULTS.background;
    if (!attr) return color;
    if (CSS.supports("color", attr)) return attr;
    if (!quiet) log(`background "${attr}" is not a CSS colour; using ${color}`);
    return color;
  }

  _applyBackground() {
    const color = this._background(false);
    this.style.setProperty("--foto3d-background", color);
    if (this.renderer) this.renderer.setClearColor(new THREE.Color(colorToHex(color)), 1);
  }

  _resize() {
    this._wake();
    const w = Math.max(1, this.clientWidth || 300);
    const h = Math.max(1, this.clientHeight || 150);
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    if (!this.controls) return;
    const v = this.controls.view;
    const dir = orbitDirection(THREE.MathUtils.radToDeg(v.azimuth), THREE.MathUtils.radToDeg(v.elevation));
    if (this._framing && !this._visitorMoved) {
      // Nobody has moved the camera: frame again for the new shape (a phone turned from
      // portrait to landscape, a resized embed), from where the camera looks now.
      this._frameFit = this._fit(dir);
      v.distance = this.controls.goal.distance = this._frameFit * this._framing.distance;
      this._setOrbitLimits();
      this.controls.place(this.camera);
      return;
    }
    // The fit distance, and so the zoom range, follows the aspect; the camera moves only if the
    // new range excludes where it is.
    this._frameFit = this._fit(dir);
    if (this._setOrbitLimits()) this.controls.place(this.camera);
  }

  // ---- the parts around the picture -------------------------------------------------------

  _ui() {
    return { ...DEFAULTS.ui, ...(this.config.ui || {}) };
  }

  _showPoster(url) {
    if (!url || this.state === "ready" || this.config.ui?.poster === false) return;
    this.$.poster.src = url;
    this.$.poster.hidden = false;
    this.$.poster.addEventListener("load", () => {
      if (this.timings.poster === undefined) {
        this.timings.poster = performance.now();
        if (this._beacon) this._beacon.poster(this.timings.poster);
      }
    }, { once: true });
  }

  /** Resolves when the poster being fetched has loaded or failed (at once when there is none). */
  _posterSettled() {
    const img = this.$.poster;
    if (img.hidden || !img.getAttribute("src") || img.complete) return Promise.resolve();
    return new Promise((resolve) => {
      img.addEventListener("load", resolve, { once: true });
      img.addEventListener("error", resolve, { once: true });
    });
  }

  _progress(loaded, total) {
    if (loaded > 0 && !this._gotBytes) mark("first-bytes");
    this._gotBytes = this._gotBytes || loaded > 0;
    if (total > 0 && loaded >= total) mark("all-bytes");
    if (!this._ui().progress) return;
    const fraction = total > 0 ? Math.min(1, loaded / total) : null;
    this.$.progress.hidden = false;
    this.$.progress.classList.toggle("indeterminate", fraction === null);
    if (fraction !== null) this.$.bar.style.width = `${Math.round(fraction * 100)}%`;
  }


  _ready() {
    this.timings.firstFrame = performance.now();
    if (this._beacon) this._beacon.firstFrame(this.timings.firstFrame);
    mark("ready");
    this.$.poster.hidden = true;
    this.$.progress.hidden = true;
    this.$.fullscreen.hidden = !this._ui().fullscreen || !document.fullscreenEnabled;
    this._buildHotspots();
    this._setState("ready");
  }

  _unavailable(code = "unavailable") {
    if (this._beacon) this._beacon.error(code);
    this._stopLoop();
    this.$.progress.hidden = true;
    this.$.poster.hidden = true;
    this.$.card.hidden = false;
    this._setState("unavailable");
  }

  _setState(state) {
    this.state = state;
    this.setAttribute("state", state);
    this.dispatchEvent(new CustomEvent("foto3d-state", { detail: { state } }));
  }

  _buildHotspots() {
    this.$.hotspots.replaceChildren();
    this._hotspots = [];
    if (!this._ui().hotspots) return;
    for (const h of this.config.hotspots || []) {
      const el = document.createElement("div");
      el.className = "hotspot";
      el.setAttribute("part", "hotspot");
      el.textContent = h.label;
      if (h.description) el.title = h.description;
      this.$.hotspots.append(el);
      this._hotspots.push({ el, at: new THREE.Vector3(...h.position) });
    }
  }

  _placeHotspots() {
    if (!this._hotspots || this._hotspots.length === 0) return;
    const w = this.clientWidth;
    const h = this.clientHeight;
    for (const { el, at } of this._hotspots) {
      const p = at.clone().applyQuaternion(this.adjust).project(this.camera);
      el.hidden = p.z > 1 || Math.abs(p.x) > 1 || Math.abs(p.y) > 1;
      el.style.transform = `translate(${((p.x + 1) / 2) * w}px, ${((1 - p.y) / 2) * h}px)`;
    }
  }

  // ---- for pages that drive the viewer (the dashboard's review) --------------------------

  toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else {
      if (this._beacon) this._beacon.interaction("fullscreen");
      this.requestFullscreen().catch((err) => log(`full screen refused: ${err.message}`));
    }
  }

  /** Apply a (partial) config on top of the current one, checked like any other. */
  applyConfig(partial) {
    const { config, errors } = checkConfig({ ...this.config, ...partial });
    for (const e of errors) log(`config: ${e}`);
    this.config = config;
    if (!this.mesh || this.state !== "ready") return errors;
    this._wake();
    this._applyBackground();
    this._frame();
    this._buildHotspots();
    return errors;
  }

  /** The current view as config fields: orbit angles around the centre, distance as a multiple of the fit. */
  currentView() {
    const rel = this.camera.position.clone().sub(this.center);
    const d = rel.length();
    return {
      azimuth: round(THREE.MathUtils.radToDeg(Math.atan2(rel.x, rel.z)), 2),
      elevation: round(THREE.MathUtils.radToDeg(Math.asin(rel.y / d)), 2),
      distance: round(d / this._fit(rel), 3),
      fov: this.camera.fov,
    };
  }
}

function round(v, digits) {
  const k = 10 ** digits;
  return Math.round(v * k) / k;
}

function colorToHex(css) {
  const probe = document.createElement("canvas").getContext("2d");
  probe.fillStyle = css;
  return probe.fillStyle; // "#rrggbb" (or rgba(...), which THREE.Color reads too)
}

if (!customElements.get("foto3d-viewer")) customElements.define("foto3d-viewer", Foto3dViewer);
export { Foto3dViewer };
