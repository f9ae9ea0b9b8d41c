// Spark's renderer, drawing many splats per instance instead of one.
//
// Stock Spark draws one instance (one quad) per splat: 90,854 instances for a 90k-splat scene.
// Software WebGL (SwiftShader: headless browsers, machines without a usable GPU, some VMs)
// pays a fixed cost per instance, so such a frame took ~1.6 s whatever was on screen (hiding
// every splat, or halving the pixel ratio, saved almost nothing). PlayCanvas batches 128 splats
// per instance and draws the same scene in a fraction of that. This renderer does the same
// with Spark's own shader: the geometry holds SPLATS_PER_INSTANCE quads (their index in
// position.z), and the shader's per-splat index becomes instance * SPLATS_PER_INSTANCE + quad.
// Everything else (sorting, accumulation, the fragment shader, options) is Spark's.
import * as THREE from "three";
import { SparkRenderer } from "@sparkjsdev/spark";

export const SPLATS_PER_INSTANCE = 128;

// The lines of Spark 2.2's splatVertex.glsl that turn the instance into a splat's slot in the
// sorted order; if a Spark upgrade changes them, we keep the stock shader (correct, slower).
const STOCK_ORDERING = "ivec2 orderingCoord = ivec2((gl_InstanceID >> 2) & 4095, gl_InstanceID >> 14);";
const STOCK_LOOKUP = "uint splatIndex = texelFetch(ordering, orderingCoord, 0)[gl_InstanceID & 3];";
const BATCHED_ORDERING = `int splatSlot = gl_InstanceID * ${SPLATS_PER_INSTANCE} + int(position.z);
    if (splatSlot >= foto3dSplatCount) {
        return;
    }
    ivec2 orderingCoord = ivec2((splatSlot >> 2) & 4095, splatSlot >> 14);`;
const BATCHED_LOOKUP = "uint splatIndex = texelFetch(ordering, orderingCoord, 0)[splatSlot & 3];";

/** Spark's vertex shader rewritten to draw SPLATS_PER_INSTANCE splats per instance, or null. */
export function batchedVertexShader(stock) {
  if (stock.split("gl_InstanceID").length - 1 !== 3) return null;
  if (!stock.includes(STOCK_ORDERING) || !stock.includes(STOCK_LOOKUP)) return null;
  return stock
    .replace("void main() {", "uniform int foto3dSplatCount;\n\nvoid main() {")
    .replace(STOCK_ORDERING, BATCHED_ORDERING)
    .replace(STOCK_LOOKUP, BATCHED_LOOKUP);
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
    const shader = batchedVertexShader(this.material.vertexShader);
    this.batched = shader !== null;
    if (!this.batched) {
      console.error("foto3d-viewer: unknown Spark vertex shader; drawing one splat per instance");
      return;
    }
    this.material.vertexShader = shader;
    this.material.uniforms.foto3dSplatCount = { value: 0 };
    this.material.needsUpdate = true;
    this.geometry.dispose();
    this.geometry = batchedQuads(SPLATS_PER_INSTANCE);
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
    if (!this.batched) return;
    // Spark has just set one instance per splat to draw: draw that many splats, in batches.
    const splats = this.geometry.instanceCount;
    this.material.uniforms.foto3dSplatCount.value = splats;
    this.geometry.instanceCount = Math.ceil(splats / SPLATS_PER_INSTANCE);
  }
}
