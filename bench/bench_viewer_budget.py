"""The splat budget on a real scene (issue 28): what trimming a model to a device class's budget
saves and what it costs the picture.

For each budget (``none`` = the whole model), one load of the viewer in headless Chromium
(SwiftShader WebGL, no GPU), 800×600 at one device pixel per CSS pixel, on the same file from a
local server, reports:

- splats drawn (Spark's instance count for the frame, read back from the renderer);
- the page's JS heap after a garbage collection (DevTools ``Runtime.getHeapUsage``) and the
  viewer's estimate of the model's GPU memory (its splat textures, generated splats and order);
- load: the file decoded (``foto3d:decoded``), the budget applied (``foto3d:budget``, in a worker)
  and the first picture (``foto3d:ready``), ms after navigation; and one frame's cost (a draw and a
  1-pixel read-back, which waits for the rasteriser), median of 5;
- the picture: PSNR of the default view against the whole model's, over the full frame.

Loads alternate between the budgets, ``--repeat`` times (default 3); the table gives medians
(PSNR: the lowest, against the first load of the first budget).

Usage: .venv/bin/python bench/bench_viewer_budget.py bench/out/scenes [--scene playbot]
       [--budgets none,400000,250000] [--repeat 3]

The scenes come from bench/fetch_scenes.py (``<scene>.ply``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import numpy.typing as npt
from bench_viewer import browser_and_site

from testkit.viewer_canvas import canvas_rgb

LOAD_TIMEOUT_S = 600.0

_STATE = """() => {
  const v = document.querySelector('foto3d-viewer');
  const marks = {};
  for (const m of performance.getEntriesByType('mark')) {
    if (m.name.startsWith('foto3d:') && !(m.name.slice(7) in marks)) marks[m.name.slice(7)] = m.startTime;
  }
  return {...v.splats, drawn: v.spark.drawnSplats, marks};
}"""

_FRAME_MS = """() => {
  const v = document.querySelector('foto3d-viewer');
  const gl = v.renderer.getContext();
  const px = new Uint8Array(4);
  const times = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    v.renderer.render(v.scene, v.camera);
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[2];
}"""


async def load(
    browser: Any, base: str, name: str, budget: str
) -> tuple[dict[str, Any], npt.NDArray[np.uint8]]:
    context = await browser.new_context(viewport={"width": 800, "height": 600})
    page = await context.new_page()
    try:
        await page.goto(f"{base}/ours?file={quote(name + '.ply')}&max-splats={quote(budget)}")
        await page.wait_for_function(
            "() => document.querySelector('foto3d-viewer')?.state === 'ready'"
            " && document.querySelector('foto3d-viewer').idle",
            timeout=LOAD_TIMEOUT_S * 1000,
        )
        state: dict[str, Any] = await page.evaluate(_STATE)
        cdp = await context.new_cdp_session(page)
        await cdp.send("HeapProfiler.collectGarbage")
        usage = await cdp.send("Runtime.getHeapUsage")
        # the JS heap and the array buffers it holds (Spark keeps its splat arrays after upload)
        state["heap"] = usage["usedSize"] + usage.get("backingStorageSize", 0)
        state["frame_ms"] = await page.evaluate(_FRAME_MS)
        return state, await canvas_rgb(page)
    finally:
        await context.close()


def psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenes", type=Path, help="bench/fetch_scenes.py's folder")
    ap.add_argument("--scene", default="playbot")
    ap.add_argument("--budgets", default="none,400000,250000", help="comma-separated; none = the whole model")
    ap.add_argument("--repeat", type=int, default=3, help="loads per budget, medians (default 3)")
    args = ap.parse_args()

    async def run() -> None:
        budgets = args.budgets.split(",")
        loads: dict[str, list[tuple[dict[str, Any], npt.NDArray[np.uint8]]]] = {b: [] for b in budgets}
        async with browser_and_site(args.scenes) as (browser, _app, base):
            for _ in range(args.repeat):  # budgets alternate, so a slow spell falls on each
                for budget in budgets:
                    loads[budget].append(await load(browser, base, args.scene, budget))
        print(
            "| budget | splats drawn | JS heap + array buffers | GPU estimate | decoded | budget applied"
            " | first picture | frame | PSNR vs whole |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        reference = loads[budgets[0]][0][1]
        for budget in budgets:
            runs = [s for s, _ in loads[budget]]

            def med(f: Any, runs: list[dict[str, Any]] = runs) -> float:
                return float(statistics.median(f(r) for r in runs))

            s = runs[0]
            marks = [r["marks"] for r in runs]
            applied = (
                f"{statistics.median(m['budget'] - m['decoded'] for m in marks):.0f} ms"
                if all("budget" in m for m in marks)
                else "–"
            )
            quality = min(psnr(img, reference) for _, img in loads[budget])
            print(
                f"| {budget} | {s['drawn']:,} of {s['total']:,} | {med(lambda r: r['heap']) / 1e6:.1f} MB"
                f" | {s['gpuBytes'] / 1e6:.1f} MB | {med(lambda r: r['marks']['decoded']) / 1000:.2f} s"
                f" | {applied} | {med(lambda r: r['marks']['ready']) / 1000:.2f} s"
                f" | {med(lambda r: r['frame_ms']):.0f} ms"
                f" | {'reference' if quality == math.inf else f'{quality:.1f} dB'} |",
                flush=True,
            )

    asyncio.run(run())


if __name__ == "__main__":
    main()
