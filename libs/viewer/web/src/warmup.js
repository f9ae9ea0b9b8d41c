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
import * as THREE from "three";
import { PackedSplats, SplatMesh } from "@sparkjsdev/spark";

/**
 * Draw one invisible splat through Spark in `scene` seen by `camera` (at the origin, looking
 * down -Z), and remove it again. `sorted()` resolves when the renderer's sort of that splat is
 * back (or the warm-up is no longer wanted); `wanted()` says whether to go on: once the model
 * has arrived its own first frame does the same work. Resolves when the draw has been issued;
 * the rasteriser compiles in its own process.
 */
export async function warmUpSplatPipeline({ renderer, scene, camera, color, sorted, wanted }) {
  const packed = new PackedSplats();
  const size = 0.02; // a few pixels across at one unit: pixels to shade, little to rasterise
  packed.pushSplat(
    new THREE.Vector3(0, 0, -1),
    new THREE.Vector3(size, size, size),
    new THREE.Quaternion(),
    0.5,
    color,
  );
  const mesh = new SplatMesh({ packedSplats: packed, lod: false });
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
}
