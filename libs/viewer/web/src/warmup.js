// Builds the splat pipeline while the model is still on its way.
//
// Under software WebGL (SwiftShader) the first draw of Spark's splat shader took 0.9-1.1 s of
// GPU-process time, against 0.3-0.5 s for the same draw later: the rasteriser compiles each
// shader and pipeline state into machine code the first time it is used, and Spark creates its
// sort worker on the first sort. None of that depends on the model, yet all of it sat between
// the file's arrival and the first picture. Drawing one splat through Spark's whole path
// (generate, depth read-back and worker sort, batched draw) as soon as the renderer exists moves
// that work into the download, where the page is otherwise waiting. The splat has the
// background's colour and sits off the object's place (the model is not in the scene yet), so
// the frame shows nothing new. A draw of no splats would not do: the rasteriser compiles a
// pipeline only when it has pixels to shade.
//
// Spark generates a model's splats with a program built for its SH degree (view-dependent
// colour), so when the file's first bytes say the model has SH (shdegree.js), one more splat
// with that degree is generated: the 500k-splat, SH-2 playbot's first sort then began 60-70 ms
// sooner after its file was parsed.
import * as THREE from "three";
import { PackedSplats, SplatMesh } from "@sparkjsdev/spark";

/** One splat of `color` at (0, 0, -1), with zero SH coefficients up to `degree`. */
function warmUpSplat(color, degree) {
  const packed = new PackedSplats();
  const size = 0.02; // a few pixels across at one unit: pixels to shade, little to rasterise
  packed.pushSplat(
    new THREE.Vector3(0, 0, -1),
    new THREE.Vector3(size, size, size),
    new THREE.Quaternion(),
    0.5,
    color,
  );
  // Spark's SH layout: 2 words per splat for degree 1, 4 more each for degrees 2 and 3.
  if (degree >= 1) packed.extra.sh1 = new Uint32Array(2);
  if (degree >= 2) packed.extra.sh2 = new Uint32Array(4);
  if (degree >= 3) packed.extra.sh3 = new Uint32Array(4);
  return new SplatMesh({ packedSplats: packed, lod: false });
}

/**
 * Draw one invisible splat through Spark in `scene` seen by `camera` (at the origin, looking
 * down -Z), and remove it again. `sorted()` resolves when the renderer's sort of that splat is
 * back (or the warm-up is no longer wanted); `wanted()` says whether to go on: once the model
 * has arrived its own first frame does the same work. `shDegree` resolves to the model's SH
 * degree when its first bytes tell (null otherwise, or once the model is in): for a degree
 * above 0 Spark's program that generates splats of that degree is built too. Resolves when the
 * draws have been issued; the rasteriser compiles in its own process.
 */
export async function warmUpSplatPipeline({ renderer, scene, camera, color, sorted, wanted, shDegree }) {
  const mesh = warmUpSplat(color, 0);
  scene.add(mesh);
  try {
    await mesh.initialized;
    if (!wanted()) return;
    performance.mark("foto3d:warm-1");
    renderer.render(scene, camera); // generate the splats and start the sort (depth read-back, worker)
    performance.mark("foto3d:warm-2");
    await sorted();
    performance.mark("foto3d:warm-3");
    if (!wanted()) return;
    renderer.render(scene, camera); // the batched draw, now that there is an order
  } finally {
    scene.remove(mesh);
    mesh.dispose();
  }
  const degree = await shDegree;
  if (!(degree > 0) || !wanted()) return;
  const shMesh = warmUpSplat(color, degree);
  scene.add(shMesh);
  try {
    await shMesh.initialized;
    if (!wanted()) return;
    renderer.render(scene, camera); // generate with the model's SH degree, and sort
    performance.mark("foto3d:warm-sh");
    await sorted(); // so that the model's first sort does not wait for this one
  } finally {
    scene.remove(shMesh);
    shMesh.dispose();
  }
}
