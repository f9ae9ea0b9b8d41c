"""Viewer frame cost: rasteriser time per frame of the settled view, ours beside SuperSplat's.

For each scene (one file per scene, of ``--format``), in headless Chromium (SwiftShader WebGL)
at 800x600, in the same run:

- ``foto3d``: ``<foto3d-viewer src=…>`` with no settings, settled (sorted and drawn); then the
  same view drawn ``--frames`` times with each of its renderer's modes (``BatchedSparkRenderer``
  in ``libs/viewer/web/src/batched.js``): ``lean`` (the viewer's own cut of Spark's shaders,
  128 splats per instance: what it ships), ``batched`` (Spark's shaders, 128 per instance) and
  ``stock`` (Spark as published: one instance per splat);
- ``supersplat``: SuperSplat's viewer page on the same file, its PlayCanvas ``app.render()``
  timed the same way once the splat is loaded.

A frame's time is a draw plus a 1-pixel ``readPixels``, which waits until the rasteriser has
finished it: the median of ``--frames`` after one untimed draw (the first draw of a mode also
compiles its shaders). The picture each mode draws is compared with Spark's own (``stock``):
the largest difference of a colour channel and the number of pixels that differ by more than 2
levels, so that a faster mode is seen to draw the same thing.

Scenes as for bench/bench_viewer.py (see docs/benchmarks.md).

Usage: .venv/bin/python bench/bench_viewer_frame.py bench/out/scenes [--scenes guitar,biker,playbot]
       [--format compressed-ply] [--frames 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench_viewer import _DONE, HEIGHT, SUPERSPLAT_READS, WIDTH, browser_and_site

from foto3d.libs.splat import SplatFormatError
from foto3d.libs.splat.formats import registry as splat_formats

MODES = ("lean", "batched", "stock")

# In our page: each mode's frame times and its picture's difference from the stock picture.
_OURS = """async ([modes, frames]) => {
  const el = document.querySelector('foto3d-viewer');
  const spark = el.spark, r = el.renderer, gl = r.getContext();
  await new Promise((resolve) => {
    const settled = () => (!spark.sorting && !spark.sortDirty && el.idle ? resolve() : setTimeout(settled, 50));
    settled();
  });
  r.setAnimationLoop(null);
  const px = new Uint8Array(4);
  const w = gl.drawingBufferWidth, h = gl.drawingBufferHeight;
  const draw = () => { r.render(el.scene, el.camera); gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px); };
  const picture = () => {
    r.render(el.scene, el.camera);
    const out = new Uint8Array(w * h * 4);
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, out);
    return out;
  };
  const out = { splats: spark.activeSplats, modes: {} };
  const pictures = {};
  for (const mode of modes) {
    spark.use(mode);
    draw();  // compiles this mode's shaders
    const times = [];
    for (let i = 0; i < frames; i++) {
      const t = performance.now();
      draw();
      times.push(performance.now() - t);
    }
    pictures[mode] = picture();
    out.modes[mode] = { times };
  }
  spark.use('lean');
  for (const mode of modes) {
    const a = pictures[mode], b = pictures.stock;
    let max = 0, over2 = 0;
    for (let i = 0; i < a.length; i += 4) {
      const d = Math.max(Math.abs(a[i] - b[i]), Math.abs(a[i + 1] - b[i + 1]), Math.abs(a[i + 2] - b[i + 2]));
      if (d > max) max = d;
      if (d > 2) over2++;
    }
    out.modes[mode].maxDiff = max;
    out.modes[mode].pixelsOver2 = over2;
  }
  out.pixels = w * h;
  return out;
}"""

# In SuperSplat's page, once its splat is loaded: app.render() timed the same way.
_SUPERSPLAT_LOADED = """() => !!window.app && window.app.root.findComponents('gsplat')
  .some((c) => c.resource && c.resource.numSplats > 0)"""
_SUPERSPLAT = """async (frames) => {
  const app = window.app;
  const gl = app.graphicsDevice.gl;
  const px = new Uint8Array(4);
  const draw = () => { app.render(); gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px); };
  for (let i = 0; i < 3; i++) draw();  // its sort and first frames after loading
  const times = [];
  for (let i = 0; i < frames; i++) {
    const t = performance.now();
    draw();
    times.push(performance.now() - t);
  }
  return times;
}"""


async def measure(scenes: Path, names: list[str], fmt: str, frames: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async with browser_and_site(scenes) as (browser, _app, base):
        for name in names:
            file = scenes / f"{name}{splat_formats.get(fmt).suffixes[0]}"
            if not file.is_file():
                print(f"  (no {file.name}; skipped)", file=sys.stderr)
                continue
            q = quote(file.name)
            context = await browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
            page = await context.new_page()
            await page.goto(f"{base}/ours?file={q}")
            await page.wait_for_function(_DONE, timeout=120_000)
            ours = await page.evaluate(_OURS, [list(MODES), frames])
            await context.close()
            row: dict[str, Any] = {"scene": name, "format": fmt, **ours, "supersplat": None}
            if fmt in SUPERSPLAT_READS:
                context = await browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
                page = await context.new_page()
                await page.goto(
                    f"{base}/supersplat/index.html?content=/scenes/{q}&webgl&noui&noanim&settings=/settings-nocam.json"
                )
                await page.wait_for_function(_SUPERSPLAT_LOADED, timeout=120_000)
                row["supersplat"] = await page.evaluate(_SUPERSPLAT, frames)
                await context.close()
            rows.append(row)
            print(table_row(row), flush=True)
    return rows


def table_row(row: dict[str, Any]) -> str:
    modes = row["modes"]
    ms = {m: statistics.median(modes[m]["times"]) for m in MODES}
    peer = statistics.median(row["supersplat"]) if row["supersplat"] else None
    peer_cells = f"{peer:.0f} ms | {ms['lean'] / peer:.2f}×" if peer else "— | —"
    diffs = "; ".join(
        f"{m}: max {modes[m]['maxDiff']}, {modes[m]['pixelsOver2']} px > 2" for m in ("lean", "batched")
    )
    return (
        f"| {row['scene']} | {row['format']} | {row['splats']:,} | {ms['lean']:.0f} ms | {ms['batched']:.0f} ms | "
        f"{ms['stock']:.0f} ms | {peer_cells} | {diffs} (of {row['pixels']:,}) |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenes", type=Path, help="folder with <scene>.<format> files")
    ap.add_argument("--scenes", dest="names", default="guitar,biker,playbot", help="scene names")
    ap.add_argument("--format", default="compressed-ply", help="the format to load (default compressed-ply)")
    ap.add_argument("--frames", type=int, default=5, help="timed frames per mode (default 5)")
    args = ap.parse_args()
    try:
        splat_formats.get(args.format)
    except SplatFormatError as exc:
        raise SystemExit(str(exc)) from None
    print(
        "| scene | format | splats drawn | lean (shipped) | batched | stock Spark | SuperSplat | "
        "lean / SuperSplat | picture against stock Spark |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    names = [n for n in args.names.split(",") if n]
    asyncio.run(measure(args.scenes, names, args.format, max(1, args.frames)))


if __name__ == "__main__":
    main()
