"""Viewer benchmark: bytes fetched and time to the first rendered frame, ours beside SuperSplat's.

For every scene and format in SCENES_DIR, both viewers load the same file from the same local
server in headless Chromium (SwiftShader WebGL) at 800x600, each in a fresh browser context (cold
cache), in the same run:

- ``foto3d``: ``<foto3d-viewer src=…>`` from the built bundle, with no settings at all;
- ``supersplat``: ``@playcanvas/supersplat-viewer``'s self-contained ``public/`` page
  (``?content=…&settings=…&webgl&noui&noanim``), with a settings file that has no camera (without
  one it shows nothing; that case is measured too).

Time to first frame: screenshots are taken back to back from navigation on; the first frame is
the first screenshot at least 90 % like the settled picture (pixels within a small colour
tolerance, over the central 80 % of the frame), so both viewers are judged by what a visitor
sees, not by their own events. Bytes: response bodies the local server sent for the page (the
viewer's code, styles, settings and the splat; counted server-side, since Spark fetches in a
worker), until the picture settles. Poster: ``<foto3d-viewer poster=…>`` reports
when its poster image has loaded, in ms since navigation start.

Scenes (not in the repository; see docs/benchmarks.md): PlayCanvas's engine repository,
``examples/assets/splats/{guitar,biker}.compressed.ply`` (real trained captures, CC-BY as PlayCanvas
publishes its example assets), converted with ``npx @playcanvas/splat-transform`` (``.ply``;
``.sog`` with ``-g cpu``) and ``foto3d splat convert`` (``.spz``; splat-transform 3.7 writes
``.spz`` v4 without Niantic's RUB turn, which Spark 2.2 cannot read).

Each file is loaded ``--repeat`` times (default 3) by each viewer, the two alternating; the summary
gives the median first frame, its spread and ours / SuperSplat's. For our viewer each row also
lists its phases, the ``foto3d:*`` performance marks (ms since navigation): ``module`` (bundle
running), ``connected``, ``renderer``, ``first-bytes``/``all-bytes`` (download), ``warm-1``..``warm-3``
and ``warm`` (the splat pipeline warm-up's steps; ``warm`` once its draw is issued), ``loaded`` (parsed), ``framed`` (bounds and camera),
``render-start``/``render-end`` (first frame submitted), ``ready`` (first frame with sorted splats
submitted; the screenshot shows it once the rasteriser has drawn it).

Usage: .venv/bin/python bench/bench_viewer.py bench/out/scenes [--scenes guitar,biker]
       [--formats compressed-ply,spz,sog,ply] [--repeat 3] [--json out.json]

Formats are the splat format registry's names; the file of format F is ``<scene><suffix of F>``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from aiohttp import web

from foto3d.libs.splat import SplatFormatError
from foto3d.libs.splat.formats import registry as splat_formats
from foto3d.libs.viewer import assets
from foto3d.proto.jobs import UpAxis

WIDTH, HEIGHT = 800, 600
BACKGROUND = (238, 240, 243)  # #eef0f3, ours by default; SuperSplat is given the same
SERVED = web.AppKey("served", list)
SUPERSPLAT = assets.WEB_DIR / "node_modules" / "@playcanvas" / "supersplat-viewer" / "public"
SUPERSPLAT_SETTINGS = {  # a valid v2 experience with no camera: the viewer frames the scene itself
    "version": 2,
    "tonemapping": "none",
    "highPrecisionRendering": False,
    "background": {"color": [c / 255 for c in BACKGROUND]},
    "postEffectSettings": {
        "sharpness": {"enabled": False, "amount": 0},
        "bloom": {"enabled": False, "intensity": 1, "blurLevel": 2},
        "grading": {"enabled": False, "brightness": 0, "contrast": 1, "saturation": 1, "tint": [1, 1, 1]},
        "vignette": {"enabled": False, "intensity": 0.5, "inner": 0.3, "outer": 0.75, "curvature": 1},
        "fringing": {"enabled": False, "intensity": 0.5},
    },
    "animTracks": [],
    "cameras": [],
    "annotations": [],
    "startMode": "default",
}
SETTLE_TIMEOUT_S = 30.0
#: The formats SuperSplat's viewer reads (it has no .spz parser: it would show nothing).
SUPERSPLAT_READS = {"ply", "compressed-ply", "sog"}

# Judges screenshots against the last (settled) one, in the browser (no image library needed
# here). The background is the settled frame's dominant border colour; "object" pixels differ
# from it. A shot is a frame of the object when >= 90 % of the settled object pixels match it.
_COMPARE = """async ([shots, x0, y0, w, h]) => {
  const decode = async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const ctx = c.getContext('2d');
    ctx.drawImage(bmp, 0, 0);
    return ctx.getImageData(x0, y0, w, h).data;
  };
  const last = await decode(shots[shots.length - 1]);
  const border = [];
  for (let x = 0; x < w; x++) for (const y of [0, h - 1]) border.push(((y * w + x) * 4));
  const key = (i) => `${last[i] >> 3},${last[i + 1] >> 3},${last[i + 2] >> 3}`;
  const counts = new Map();
  for (const i of border) counts.set(key(i), (counts.get(key(i)) || 0) + 1);
  const bgKey = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
  const bgIndex = border.find((i) => key(i) === bgKey);
  const bg = [last[bgIndex], last[bgIndex + 1], last[bgIndex + 2]];
  const mask = [];
  for (let i = 0; i < last.length; i += 4) {
    if (Math.abs(last[i] - bg[0]) + Math.abs(last[i + 1] - bg[1]) + Math.abs(last[i + 2] - bg[2]) > 40) mask.push(i);
  }
  const out = [];
  for (const s of shots) {
    const d = await decode(s);
    let same = 0;
    for (const i of mask) {
      if (Math.abs(d[i] - last[i]) + Math.abs(d[i + 1] - last[i + 1]) + Math.abs(d[i + 2] - last[i + 2]) < 60) same++;
    }
    out.push(mask.length ? same / mask.length : 0);
  }
  return { similarity: out, objectShare: mask.length / (last.length / 4), background: bg };
}"""


_DONE = "['ready', 'unavailable'].includes(document.querySelector('foto3d-viewer')?.state)"

# The first time of each of our viewer's marks, in ms since navigation.
_MARKS = """() => {
  const out = {};
  for (const m of performance.getEntriesByType('mark')) {
    if (!m.name.startsWith('foto3d:')) continue;
    const k = m.name.slice(7);
    if (!(k in out)) out[k] = Math.round(m.startTime);
  }
  return out;
}"""


@dataclass
class Result:
    scene: str
    fmt: str
    viewer: str
    file_bytes: int
    fetched: int = 0
    first_frame_s: float | None = None
    settled: bool = False
    object_share: float = 0.0
    poster_ms: float | None = None
    # ours only: the viewer's performance marks ("foto3d:NAME", ms since navigation), first of each
    phases: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # (seconds since navigation, likeness to the settled picture) per screenshot
    shots: list[tuple[float, float]] = field(default_factory=list)


def make_app(scenes: Path) -> web.Application:
    b = assets.bundle()

    async def ours(request: web.Request) -> web.Response:
        attrs = f'src="/scenes/{quote(request.query["file"])}"'
        if "poster" in request.query:
            attrs += f' poster="/scenes/{quote(request.query["poster"])}"'
        if "max-splats" in request.query:  # the splat budget (bench_viewer_budget.py)
            attrs += f' max-splats="{quote(request.query["max-splats"])}"'
        html = f"""<!doctype html><html><head><meta charset="utf-8">
<style>html,body{{margin:0}}foto3d-viewer{{width:{WIDTH}px;height:{HEIGHT}px}}</style>
{assets.script_tag("/viewer/" + b.file, b.sri)}</head><body><foto3d-viewer {attrs}></foto3d-viewer></body></html>"""
        return web.Response(text=html, content_type="text/html")

    async def settings(_request: web.Request) -> web.Response:
        return web.json_response(SUPERSPLAT_SETTINGS)

    async def count(request: web.Request, response: web.StreamResponse) -> None:
        # body bytes as sent (every file here is served whole, with a Content-Length)
        request.app[SERVED][0] += response.content_length or 0

    app = web.Application()
    app[SERVED] = [0]
    app.on_response_prepare.append(count)
    app.router.add_get("/viewer/{file}", assets.handle_bundle)
    app.router.add_get("/ours", ours)
    app.router.add_get("/settings-nocam.json", settings)
    app.router.add_static("/scenes", scenes)
    app.router.add_static("/supersplat", SUPERSPLAT)
    return app


async def measure(browser: Any, app: web.Application, base: str, url: str, res: Result, poster: bool) -> None:
    context = await browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    page = await context.new_page()
    page.on("console", lambda m: res.errors.append(m.text[:160]) if m.type == "error" else None)
    page.on("pageerror", lambda e: res.errors.append(str(e)[:160]))
    served = app[SERVED]
    served[0] = 0
    shots: list[tuple[float, bytes]] = []
    t0 = time.perf_counter()
    await page.goto(base + url, wait_until="commit")
    while time.perf_counter() - t0 < SETTLE_TIMEOUT_S:
        try:
            png = await page.screenshot(type="png")
        except Exception as exc:  # Chromium sometimes refuses one capture under load: try again
            res.errors.append(f"screenshot: {exc}"[:160])
            continue
        shots.append((time.perf_counter() - t0, png))
        # settled: four identical pictures, once something has appeared
        # (ours may rest on its poster while it works: settled only once it says it is done)
        still = (
            len(shots) >= 5 and shots[-1][1] == shots[-2][1] == shots[-3][1] == shots[-4][1] != shots[0][1]
        )
        if still and (not res.viewer.startswith("foto3d") or await page.evaluate(_DONE)):
            res.settled = True
            break
    res.fetched = served[0]
    if res.viewer.startswith("foto3d"):
        res.phases = await page.evaluate(_MARKS)
    if poster:
        res.poster_ms = await page.evaluate(
            "document.querySelector('foto3d-viewer')?.timings?.poster ?? null"
        )
    await context.close()
    # judge the screenshots (in another context, after timing, so it costs the viewer nothing)
    judge_ctx = await browser.new_context()
    judge = await judge_ctx.new_page()
    mx, my = WIDTH // 10, HEIGHT // 10
    b64 = [base64.b64encode(p).decode() for _, p in shots]
    verdict = await judge.evaluate(_COMPARE, [b64, mx, my, WIDTH - 2 * mx, HEIGHT - 2 * my])
    await judge_ctx.close()
    res.object_share = round(float(verdict["objectShare"]), 3)
    res.shots = [
        (round(t, 2), round(float(x), 2)) for (t, _), x in zip(shots, verdict["similarity"], strict=True)
    ]
    if res.object_share < 0.005:
        return  # nothing but background: no frame to speak of
    for (t, _), sim in zip(shots, verdict["similarity"], strict=True):
        if sim >= 0.9:
            res.first_frame_s = round(t, 2)
            break


@asynccontextmanager
async def browser_and_site(scenes: Path) -> AsyncIterator[tuple[Any, web.Application, str]]:
    """Headless Chromium (as the tests run it) and the local server for ``scenes``: (browser, app,
    base URL). Exits saying what is missing when Chromium or SuperSplat's page is not there."""
    from playwright.async_api import async_playwright

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.browser import CHROMIUM_ARGS, chromium_path

    exe = chromium_path()
    if exe is None:
        raise SystemExit("no chromium on PATH (scripts/test-deps.sh installs it)")
    if not (SUPERSPLAT / "index.html").is_file():
        raise SystemExit(f"{SUPERSPLAT} is missing: run `make viewer` (npm ci in libs/viewer/web)")
    app = make_app(scenes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS)
            try:
                yield browser, app, f"http://127.0.0.1:{port}"
            finally:
                await browser.close()
    finally:
        await runner.cleanup()


async def run(scenes: Path, formats: list[str], names: list[str], repeat: int) -> list[Result]:
    results: list[Result] = []
    async with browser_and_site(scenes) as (browser, app, base):
        for name in names:
            for fmt in formats:
                f = scenes / f"{name}{splat_formats.get(fmt).suffixes[0]}"
                if not f.is_file():
                    print(f"  (no {f.name}; skipped)", file=sys.stderr)
                    continue
                # ours and SuperSplat's alternate, so that a slow spell of this shared
                # machine falls on both
                for viewer, url, with_poster in loads(scenes, name, fmt, fmt == formats[0], repeat):
                    res = Result(name, fmt, viewer, f.stat().st_size)
                    await measure(browser, app, base, url, res, with_poster)
                    results.append(res)
                    print(row(res), flush=True)
    return results


def loads(scenes: Path, name: str, fmt: str, extras: bool, repeat: int) -> list[tuple[str, str, bool]]:
    """(viewer, page URL, whether it has a poster) for each load of one file."""
    q = quote(f"{name}{splat_formats.get(fmt).suffixes[0]}")
    supersplat = f"/supersplat/index.html?content=/scenes/{q}&webgl&noui&noanim"
    out = [("foto3d", f"/ours?file={q}", False)]
    if fmt in SUPERSPLAT_READS:
        out.append(("supersplat", supersplat + "&settings=/settings-nocam.json", False))
    out *= repeat
    if extras:
        out.append(("supersplat, no settings", supersplat + "&settings=/scenes/missing-settings.json", False))
        poster = scenes / f"{name}.poster.png"
        if poster.is_file():
            out.append(("foto3d + poster", f"/ours?file={q}&poster={quote(poster.name)}", True))
    return out


def row(r: Result) -> str:
    ff = f"{r.first_frame_s:.2f} s" if r.first_frame_s is not None else "none"
    poster = f"{r.poster_ms:.0f} ms" if r.poster_ms is not None else "—"
    phases = " ".join(f"{k}={v:.0f}" for k, v in r.phases.items())
    return (
        f"| {r.scene} | {r.fmt} | {r.viewer} | {r.file_bytes:,} | {r.fetched:,} | {ff} | "
        f"{r.object_share:.1%} | {poster} |" + (f" {phases}" if phases else "")
    )


def summary(results: list[Result]) -> list[str]:
    """Median first frame (and its spread) per file and viewer, and ours / SuperSplat's."""
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.scene, r.fmt, r.viewer), []).append(r)
    lines = [
        "| scene | format | viewer | file bytes | bytes fetched | first frame, median | spread | loads | ours / SuperSplat |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]

    def median_ff(rs: list[Result]) -> float | None:
        times = [r.first_frame_s for r in rs if r.first_frame_s is not None]
        return statistics.median(times) if len(times) == len(rs) else None

    for (scene, fmt, viewer), rs in groups.items():
        times = sorted(r.first_frame_s for r in rs if r.first_frame_s is not None)
        med = median_ff(rs)
        spread = f"{times[0]:.2f}–{times[-1]:.2f} s" if len(times) > 1 else "—"
        ratio = ""
        if viewer == "foto3d":
            peer = groups.get((scene, fmt, "supersplat"))
            peer_med = median_ff(peer) if peer else None
            if med is not None and peer_med:
                ratio = f"**{med / peer_med:.2f}×**"
        shown = f"{med:.2f} s" if med is not None else f"none in {len(rs) - len(times)} of {len(rs)}"
        fetched = statistics.median(r.fetched for r in rs)
        lines.append(
            f"| {scene} | {fmt} | {viewer} | {rs[0].file_bytes:,} | {fetched:,.0f} | {shown} | {spread} | "
            f"{len(rs)} | {ratio} |"
        )
    return lines


def write_posters(scenes: Path, names: list[str]) -> None:
    """A poster per scene, as the publisher makes them (thumbnail of the splat)."""
    from foto3d.libs.splat import read
    from foto3d.libs.viewer.thumbnail import render_thumbnail

    for name in names:
        out = scenes / f"{name}.poster.png"
        fmt = splat_formats.get("compressed-ply")
        src = scenes / f"{name}{fmt.suffixes[0]}"
        if not out.exists() and src.exists():
            out.write_bytes(render_thumbnail(read(src), 400, up=cast(UpAxis, fmt.up)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenes", type=Path, help="folder with <scene>.<format> files")
    ap.add_argument(
        "--scenes", dest="names", default="guitar,biker", help="scene names (default guitar,biker)"
    )
    ap.add_argument(
        "--formats",
        default="compressed-ply,spz,sog,ply",
        help=f"formats to load, comma-separated ({', '.join(splat_formats.NAMES)})",
    )
    ap.add_argument("--repeat", type=int, default=3, help="loads per viewer and file (default 3)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    names = [n for n in args.names.split(",") if n]
    write_posters(args.scenes, names)
    print(
        f"bundle {assets.bundle().file}: {assets.bundle().bytes:,} bytes; viewport {WIDTH}x{HEIGHT}, SwiftShader"
    )
    print("| scene | format | viewer | file bytes | bytes fetched | first frame | object share | poster |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    formats = [f for f in args.formats.split(",") if f]
    for fmt in formats:
        try:
            splat_formats.get(fmt)
        except SplatFormatError as exc:
            raise SystemExit(str(exc)) from None
    results = asyncio.run(run(args.scenes, formats, names, max(1, args.repeat)))
    print()
    print("\n".join(summary(results)))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    for r in results:
        if r.errors:
            print(f"{r.scene} {r.fmt} {r.viewer}: console errors: {r.errors[:3]}", file=sys.stderr)


if __name__ == "__main__":
    main()
