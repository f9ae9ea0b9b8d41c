// Spark's renderer, drawing many splats per instance with shaders cut to what the viewer uses.
//
// Stock Spark draws one instance (one quad) per splat: 90,854 instances for a 90k-splat scene.
// Software WebGL (SwiftShader: headless browsers, machines without a usable GPU, some VMs)
// pays a fixed cost per instance, so such a frame took ~1.6 s whatever was on screen (hiding
// every splat, or halving the pixel ratio, saved almost nothing). PlayCanvas batches 128 splats
// per instance and draws the same scene in a fraction of that. This renderer does the same: the
// geometry holds SPLATS_PER_INSTANCE quads (their number in position.z), and the shader's splat
// slot is instance * SPLATS_PER_INSTANCE + quad.
//
// Batched, a frame of the 91k-splat guitar at 800x600 took 316 ms of rasteriser time: 90 ms
// with every quad shrunk to a point (the vertex work), the rest fill. Spark's shaders carry
// every option Spark has (extended and covariance encodings, 2D splats, depth of field, falloff
// blending, linear output, level-of-detail opacities) as branches that a software rasteriser
// pays for on every vertex and pixel, and compiles before the first frame. The viewer uses
// none of them, so it draws with its own cut of Spark's shaders (shaders/splat.*.glsl, the same
// arithmetic): 160 ms a frame, and about half the compile time, for the same picture
// (tests/viewer/test_render.py compares it with Spark's own draw).
//
// Modes: "lean" (those shaders, batched), "batched" (Spark's shaders with only the batching
// rewrite: a frame whose options the lean shaders leave out switches to it), "stock" (Spark
// as shipped; also the fallback when a Spark upgrade changes the lines rewritten here).
// Sorting, accumulation and everything else are Spark's.
import * as THREE from "three";
import { SparkRenderer } from "@sparkjsdev/spark";
import { CentreDistances } from "./cpusort.js";
import leanFragment from "./shaders/splat.frag.glsl";
import leanVertexBody from "./shaders/splat.vert.glsl";

export const SPLATS_PER_INSTANCE = 128;

const leanVertex = `#define FOTO3D_SPLATS_PER_INSTANCE ${SPLATS_PER_INSTANCE}\n${leanVertexBody}`;

// The lines of Spark 2.2's splatVertex.glsl that turn the instance into a splat's slot in the
// sorted order.
const STOCK_ORDERING = "ivec2 orderingCoord = ivec2((gl_InstanceID >> 2) & 4095, gl_InstanceID >> 14);";
const STOCK_LOOKUP = "uint splatIndex = texelFetch(ordering, orderingCoord, 0)[gl_InstanceID & 3];";
const BATCHED_ORDERING = `int splatSlot = gl_InstanceID * ${SPLATS_PER_INSTANCE} + int(position.z);
    if (splatSlot >= foto3dSplatCount) {
        return;
    }
    ivec2 orderingCoord = ivec2((splatSlot >> 2) & 4095, splatSlot >> 14);`;
const BATCHED_LOOKUP = "uint splatIndex = texelFetch(ordering, orderingCoord, 0)[splatSlot & 3];";

// What the lean shaders take from Spark 2.2: its packed encoding and helpers (the splatDefines
// chunk) and the uniforms it sets each frame. If an upgrade changes any of it, no lean draw.
const LEAN_NEEDS_VERTEX = [
  "#include <splatDefines>",
  "unpackSplatEncoding(packedData, center, scales, quaternion, rgba, vec4(0.0, 1.0, LN_SCALE_MIN, LN_SCALE_MAX));",
  "rgba.a *= 2.0;",
  "mat3 RS = scaleQuaternionToMatrix(scales, viewQuaternion);",
  "float blurAdjust = sqrt(max(0.0, detOrig / det));",
  "uniform vec2 renderSize;",
  "uniform vec4 renderToViewQuat;",
  "uniform vec3 renderToViewPos;",
  ...["maxStdDev", "minPixelRadius", "maxPixelRadius", "minAlpha", "blurAmount", "preBlurAmount", "clipXY", "focalAdjustment"]
    .map((name) => `uniform float ${name};`),
];
const LEAN_NEEDS_FRAGMENT = ["rgba.a = mix(rgba.a, rgba.a * exp(-0.5 * z2), falloff);", "if (rgba.a < minAlpha) {"];

/** Spark's vertex shader rewritten to draw SPLATS_PER_INSTANCE splats per instance, or null. */
export function batchedVertexShader(stock) {
  if (stock.split("gl_InstanceID").length - 1 !== 3) return null;
  if (!stock.includes(STOCK_ORDERING) || !stock.includes(STOCK_LOOKUP)) return null;
  return stock
    .replace("void main() {", "uniform int foto3dSplatCount;\n\nvoid main() {")
    .replace(STOCK_ORDERING, BATCHED_ORDERING)
    .replace(STOCK_LOOKUP, BATCHED_LOOKUP);
}

/** Whether the lean shaders match this Spark's shaders (the parts they were cut from). */
export function leanShadersFit(stockVertex, stockFragment) {
  return LEAN_NEEDS_VERTEX.every((line) => stockVertex.includes(line))
    && LEAN_NEEDS_FRAGMENT.every((line) => stockFragment.includes(line))
    && typeof THREE.ShaderChunk.splatDefines === "string";
}

function batchedQuads(count) {
  const geometry = new THREE.InstancedBufferGeometry();
  const position = new Float32Array(count * 12);
  const index = new Uint16Array(count * 6);
  const corners = [-1, -1, 1, -1, 1, 1, -1, 1];
  for (let q = 0; q < count; q++) {
    for (let c = 0; c < 4; c++) position.set([corners[2 * c], corners[2 * c + 1], q], q * 12 + c * 3);
    index.set([0, 1, 2, 0, 2, 3].map((v) => v + q * 4), q * 6);
  }
  geometry.setAttribute("position", new THREE.BufferAttribute(position, 3));
  geometry.setIndex(new THREE.BufferAttribute(index, 1));
  return geometry;
}

export class BatchedSparkRenderer extends SparkRenderer {
  constructor(options) {
    super(options);
    const stockVertex = this.material.vertexShader;
    const stockFragment = this.material.fragmentShader;
    const batchedVertex = batchedVertexShader(stockVertex);
    this.shaders = { stock: { vertex: stockVertex, fragment: stockFragment } };
    this.lighterWhileMoving = false; // true: the next CPU sorts keep only cpusort.js's MOVING_SHARE
    this.partialSort = false; // whether the last sort that finished left splats out
    this.stockGeometry = this.geometry;
    this.batchedGeometry = batchedQuads(SPLATS_PER_INSTANCE);
    this.material.uniforms.foto3dSplatCount = { value: 0 };
    if (batchedVertex === null) {
      console.error("foto3d-viewer: unknown Spark vertex shader; drawing one splat per instance");
      this.use("stock");
      return;
    }
    this.shaders.batched = { vertex: batchedVertex, fragment: stockFragment };
    if (leanShadersFit(stockVertex, stockFragment)) {
      this.shaders.lean = { vertex: leanVertex, fragment: leanFragment };
      this.use("lean");
    } else {
      console.error("foto3d-viewer: unknown Spark shaders; drawing with Spark's own, batched");
      this.use("batched");
    }
  }

  /** Draw with "lean", "batched" or "stock" shaders from the next frame on. */
  use(mode) {
    const shaders = this.shaders[mode];
    if (!shaders) throw new Error(`no ${mode} shaders`);
    this.mode = mode;
    this.material.vertexShader = shaders.vertex;
    this.material.fragmentShader = shaders.fragment;
    this.material.needsUpdate = true;
    this.geometry = this.batched ? this.batchedGeometry : this.stockGeometry;
  }

  /** Whether splats are drawn SPLATS_PER_INSTANCE per instance. */
  get batched() {
    return this.mode !== "stock";
  }

  /** Whether this frame's options are all ones the lean shaders draw as Spark would. */
  _leanCovers(renderer, camera) {
    const u = this.material.uniforms;
    return !u.enableExtSplats.value && !u.enableCovSplats.value && !u.enable2DGS.value
      && !(u.focalDistance.value > 0 && u.apertureAngle.value > 0)
      && u.falloff.value === 1 && !u.encodeLinear.value
      && !camera.isOrthographicCamera && !renderer.capabilities.logarithmicDepthBuffer;
  }

  /**
   * Sort `mesh`, the only splats in the scene, by distances worked out on the CPU (cpusort.js)
   * rather than drawn and read back from the GPU; null goes back to Spark's read-back.
   */
  sortOnCpu(mesh) {
    // the centres are in the mesh's own frame: a new framing or config keeps them
    if (this.cpuSort && this.cpuSort.mesh === mesh && mesh.packedSplats?.numSplats === this.cpuSort.distances.count) return;
    if (this.cpuSort) this.cpuSort.distances.dispose();
    const distances = mesh ? CentreDistances.of(mesh) : null;
    this.cpuSort = distances ? { mesh, distances, eye: new THREE.Vector3(), toMesh: new THREE.Matrix4() } : null;
  }

  async readbackDepth(args) {
    const sort = this.cpuSort;
    const { current, numSplats, readback } = args;
    // Spark's own pass for anything else: other splats in the scene, LoD, extended encodings
    if (!sort || numSplats !== sort.distances.count || current.extSplats || sort.mesh.parent === null) {
      this.cpuSorted = false;
      this.partialSort = false; // Spark's own pass sorts every splat
      return super.readbackDepth(args);
    }
    // the camera as it was when these splats were generated, in the mesh's own frame
    sort.toMesh.copy(sort.mesh.matrixWorld).invert();
    const eye = sort.eye.copy(current.viewOrigin).applyMatrix4(sort.toMesh).clone();
    const partial = this.lighterWhileMoving; // as asked when this sort began
    await sort.distances.into(eye, new Float32Array(readback.buffer, readback.byteOffset, numSplats), partial);
    this.cpuSorted = sort.distances.inWorker ? "worker" : "page";
    this.partialSort = partial;
    return readback;
  }

  /** Sort the same view again (after partial sorts: the picture at rest needs every splat). */
  sortAgain() {
    this.sortDirty = true;
    this.driveSort().catch((err) => console.warn("foto3d-viewer: sort failed:", err));
  }

  /**
   * Spark's sort, noting when the last finished one began (`sortedFrom`, performance.now()):
   * a frame drawn after it shows every splat that was in the scene then, in order. (Spark's own
   * flags cannot say so for splats with view-dependent colour: each frame may start a new sort.)
   */
  async driveSort() {
    const runs = !this.sorting && this.sortDirty; // otherwise Spark returns at once
    const from = performance.now();
    await super.driveSort();
    if (runs) this.sortedFrom = Math.max(this.sortedFrom ?? -1, from);
  }

  onBeforeRender(renderer, scene, camera) {
    super.onBeforeRender(renderer, scene, camera);
    if (this.mode === "lean" && !this._leanCovers(renderer, camera)) {
      console.warn("foto3d-viewer: a Spark option the lean shaders leave out is on; drawing with Spark's shaders");
      this.use("batched");
    }
    // Spark has just set one instance per splat to draw (read back by tests and the bench)
    const splats = this.geometry.instanceCount;
    this.drawnSplats = splats;
    if (!this.batched) return;
    // draw that many splats, in batches
    this.material.uniforms.foto3dSplatCount.value = splats;
    this.geometry.instanceCount = Math.ceil(splats / SPLATS_PER_INSTANCE);
  }
}
