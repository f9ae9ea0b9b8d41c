"""What the viewer's sort costs the page's thread, per sort, under a phone's CPU (issue 28).

Each sort needs every splat's distance from the camera (``src/cpusort.js``). Measured on the
page, through the viewer's own ``CentreDistances`` of the loaded model, with the page's CPU slowed
4x (Lighthouse's mobile profile, DevTools protocol), medians of ``--rounds``:

- page: the distances worked out on the page's thread (the earlier route; also the fallback
  where no worker can start), and the one-off decode of the centres there;
- worker: what the worker route leaves on the page's thread per sort: posting the camera and
  copying the answer into Spark's buffer; and the round trip (the worker's own time included,
  which DevTools' throttling does not slow).

A long task is one over 50 ms: on the page, the distances of a 500k-splat model were one.

Usage: .venv/bin/python bench/bench_viewer_sort.py bench/out/scenes [--scenes guitar,biker,playbot]
       [--rounds 9]

The scenes come from bench/fetch_scenes.py (``<scene>.ply``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench_viewer import browser_and_site

CPU_SLOWDOWN = 4
LOAD_TIMEOUT_S = 300.0

_MEASURE = """async (rounds) => {
  const v = document.querySelector('foto3d-viewer');
  const live = v.spark.cpuSort.distances;
  const words = v.mesh.packedSplats.packedArray, n = live.count;
  const target = new Float32Array(n);
  const eye = (i) => ({x: 0.1 * i, y: 0.3, z: 2.5});
  const out = {n, pagePerSort: [], decodeOnPage: 0, workerOnPage: [], workerRoundTrip: []};
  // the page's route: a second instance made to fall back, so it decodes on the page
  const page = new live.constructor(words, n);
  let t = performance.now();
  page._fallBack();
  out.decodeOnPage = performance.now() - t;
  for (let i = 0; i < rounds; i++) {
    t = performance.now();
    await page.into(eye(i), target);
    out.pagePerSort.push(performance.now() - t);
  }
  page.dispose();
  // the worker's route: what stays on the page is the post and the copy into Spark's buffer
  const answer = new Float32Array(n);
  for (let i = 0; i < rounds; i++) {
    t = performance.now();
    const done = live.into(eye(i), target);
    const posted = performance.now() - t;
    await done;
    out.workerRoundTrip.push(performance.now() - t);
    t = performance.now();
    target.set(answer);
    out.workerOnPage.push(posted + performance.now() - t);
  }
  out.inWorker = live.inWorker;
  return out;
}"""


async def measure(browser: Any, base: str, name: str, rounds: int) -> dict[str, Any]:
    context = await browser.new_context(viewport={"width": 412, "height": 823})
    page = await context.new_page()
    try:
        await page.goto(f"{base}/ours?file={quote(name + '.ply')}")
        await page.wait_for_function(
            "() => document.querySelector('foto3d-viewer')?.state === 'ready'",
            timeout=LOAD_TIMEOUT_S * 1000,
        )
        cdp = await context.new_cdp_session(page)
        await cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
        result: dict[str, Any] = await page.evaluate(_MEASURE, rounds)
        return result
    finally:
        await context.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenes", type=Path, help="bench/fetch_scenes.py's folder")
    ap.add_argument("--scenes", dest="names", default="guitar,biker,playbot", help="comma-separated")
    ap.add_argument("--rounds", type=int, default=9, help="sorts measured per route (default 9)")
    args = ap.parse_args()

    async def run() -> None:
        async with browser_and_site(args.scenes) as (browser, _app, base):
            print(
                "| scene | splats | distances on the page, per sort | decode on the page, once"
                " | worker: on the page, per sort | worker: round trip |"
            )
            print("|---|---:|---:|---:|---:|---:|")
            for name in args.names.split(","):
                if not (args.scenes / f"{name}.ply").is_file():
                    print(f"  (no {name}.ply; skipped)", file=sys.stderr)
                    continue
                t0 = time.perf_counter()
                r = await measure(browser, base, name, args.rounds)
                if not r["inWorker"]:
                    print(
                        f"  ({name}: no worker started; the worker figures are the page's)", file=sys.stderr
                    )

                def ms(xs: list[float]) -> str:
                    return f"{statistics.median(xs):.1f} ms ({min(xs):.1f}–{max(xs):.1f})"

                print(
                    f"| {name} | {r['n']:,} | {ms(r['pagePerSort'])} | {r['decodeOnPage']:.0f} ms"
                    f" | {ms(r['workerOnPage'])} | {ms(r['workerRoundTrip'])} |",
                    flush=True,
                )
                print(f"  ({name}: {time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    asyncio.run(run())


if __name__ == "__main__":
    main()
