"""Viewer benchmark on a phone profile: ours beside SuperSplat's viewer, the way issue 28 found it.

Lighthouse's mobile profile in headless Chromium (SwiftShader WebGL), each load in a fresh
context with the cache off: a 412x823 viewport at device pixel ratio 1.75, touch, the CPU slowed
4x and the network 1.6 Mbit/s down, 0.75 Mbit/s up with 150 ms round trips (DevTools protocol).
The two viewers load the same ``<scene>.compressed.ply`` from the same local server, alternating,
``--repeat`` times each (default 3); the summary gives medians:

- bytes: what crossed the network (the browser's encoded lengths: compressed where the server
  compressed), page, code and model;
- first picture / settled picture: screenshots back to back from navigation on; the settled
  picture is the last of four identical ones, the first picture the first screenshot at least
  90 % like it (bench_viewer.py's rule), in seconds since navigation;
- height share: the object's share of the frame's height in the settled picture (its pixels that
  differ from the background, 0.2nd to 99.8th percentile of their rows);
- swipe: two scripted one-finger swipes across the model (DevTools touch events), then the
  browser's own entries until the picture is still again or 30 s have passed: INP (the longest
  interaction, event timing), the long tasks' total and longest; for ours also the longest run of
  the viewer's own frame callback (its loop's tick: controls, Spark's update, the draw calls) in
  that window, the page's-thread work that is the viewer's and not the browser's compositing.

``--compression on`` (default) serves our bundle precompressed (brotli: Chromium offers it to
127.0.0.1, a trustworthy origin, as to HTTPS; gzip elsewhere) and gzips SuperSplat's page and
code on the fly; ``off`` asks for every file as it is (``Accept-Encoding: identity``).

Usage: .venv/bin/python bench/bench_viewer_phone.py bench/out/scenes [--scenes guitar,biker]
       [--repeat 3] [--compression on,off] [--json out.json]

The scenes come from bench/fetch_scenes.py (``src/<scene>/<scene>.compressed.ply``, copied next
to the ``.ply`` when missing).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import json
import shutil
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import web
from bench_viewer import SUPERSPLAT, SUPERSPLAT_SETTINGS, browser_and_site

from foto3d.libs.viewer import assets

WIDTH, HEIGHT, DPR = 412, 823, 1.75
CPU_SLOWDOWN = 4
NETWORK = {  # Lighthouse's "slow 4G"
    "offline": False,
    "latency": 150,
    "downloadThroughput": 1_600_000 / 8,
    "uploadThroughput": 750_000 / 8,
}
SETTLE_TIMEOUT_S = 150.0
# After the swipes, how long the page is watched at most: under software WebGL at this pixel
# ratio one frame takes seconds, and settling again could take minutes.
SWIPE_WINDOW_S = 30.0
TEXT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".html": "text/html",
    ".css": "text/css",
    ".json": "application/json",
}
COMPRESSIBLE = tuple(TEXT_TYPES)

# The settled picture's object pixels (against the border's dominant colour) and how like it each
# earlier screenshot is; the object's rows as a share of the height.
_JUDGE = """async (shots) => {
  const decode = async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const ctx = c.getContext('2d');
    ctx.drawImage(bmp, 0, 0);
    return [ctx.getImageData(0, 0, bmp.width, bmp.height).data, bmp.width, bmp.height];
  };
  const [last, w, h] = await decode(shots[shots.length - 1]);
  const counts = new Map();
  const key = (i) => `${last[i] >> 3},${last[i + 1] >> 3},${last[i + 2] >> 3}`;
  for (let x = 0; x < w; x++) for (const y of [0, h - 1]) { const i = (y * w + x) * 4; counts.set(key(i), (counts.get(key(i)) || 0) + 1); }
  const bgKey = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
  const [r, g, b] = bgKey.split(',').map((v) => Number(v) * 8 + 4);
  const mask = [];
  const rows = [];
  for (let i = 0; i < last.length; i += 4) {
    if (Math.abs(last[i] - r) + Math.abs(last[i + 1] - g) + Math.abs(last[i + 2] - b) > 40) { mask.push(i); rows.push(Math.floor(i / 4 / w)); }
  }
  rows.sort((a, b) => a - b);
  const pick = (q) => rows[Math.min(rows.length - 1, Math.floor(q * (rows.length - 1)))];
  const heightShare = rows.length ? (pick(0.998) - pick(0.002)) / h : 0;
  const like = [];
  for (const s of shots) {
    const [d] = await decode(s);
    let same = 0;
    for (const i of mask) if (Math.abs(d[i] - last[i]) + Math.abs(d[i + 1] - last[i + 1]) + Math.abs(d[i + 2] - last[i + 2]) < 60) same++;
    like.push(mask.length ? same / mask.length : 0);
  }
  return { like, heightShare, objectShare: mask.length / (w * h) };
}"""

_OBSERVE = """() => {
  window.__phone = {events: [], longtasks: []};
  new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.interactionId) window.__phone.events.push([e.interactionId, e.duration]); })
    .observe({type: 'event', durationThreshold: 16});
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__phone.longtasks.push(e.duration); })
    .observe({type: 'longtask'});
}"""


# The viewer's own work per animation frame: its loop's tick, timed around the call.
_OWN_FRAMES = """() => {
  const v = document.querySelector('foto3d-viewer');
  window.__own = [];
  const tick = v._tick.bind(v);
  v._tick = () => {
    const t = performance.now();
    try {
      return tick();
    } finally {
      window.__own.push(performance.now() - t);
    }
  };
}"""


@dataclass
class Load:
    scene: str
    viewer: str
    compression: str
    bytes: int = 0
    first_s: float | None = None
    settled_s: float | None = None
    height_share: float = 0.0
    inp_ms: float = 0.0
    longtask_ms: float = 0.0
    longest_task_ms: float = 0.0
    frame_callback_ms: float | None = None  # ours only: the viewer's longest tick
    errors: list[str] = field(default_factory=list)


def compress_middleware() -> Callable[..., Awaitable[web.StreamResponse]]:
    """Gzip SuperSplat's text files when the browser accepts it (ours are precompressed)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        accepts = "gzip" in request.headers.get("Accept-Encoding", "")
        if accepts and path.startswith("/supersplat/") and path.endswith(COMPRESSIBLE):
            f = SUPERSPLAT / path.removeprefix("/supersplat/")
            if f.is_file():
                body = gzip.compress(f.read_bytes(), 6)
                resp = web.Response(body=body, content_type=TEXT_TYPES[f.suffix])
                resp.headers["Content-Encoding"] = "gzip"
                return resp
        result: web.StreamResponse = await handler(request)
        return result

    return middleware


def make_app(scenes: Path) -> web.Application:
    b = assets.bundle()

    async def ours(request: web.Request) -> web.Response:
        html = f"""<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>html,body{{margin:0;height:100%}}foto3d-viewer{{display:block;width:100vw;height:100vh}}</style>
{assets.script_tag("/viewer/" + b.file, b.sri)}</head>
<body><foto3d-viewer src="/scenes/{quote(request.query["file"])}"></foto3d-viewer></body></html>"""
        return web.Response(text=html, content_type="text/html")

    async def settings(_request: web.Request) -> web.Response:
        return web.json_response(SUPERSPLAT_SETTINGS)

    app = web.Application(middlewares=[compress_middleware()])
    app.router.add_get("/viewer/{file}", assets.handle_bundle)
    app.router.add_get("/ours", ours)
    app.router.add_get("/settings-nocam.json", settings)
    app.router.add_static("/scenes", scenes)
    app.router.add_static("/supersplat", SUPERSPLAT)
    return app


async def swipe(cdp: Any, x: float, y: float, dx: float, moves: int = 10) -> None:
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for i in range(1, moves + 1):
        point = {"x": x + dx * i / moves, "y": y}
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


async def screenshots_until_still(page: Any, t0: float, shots: list[tuple[float, bytes]], done: Any) -> bool:
    """Screenshots until four in a row are the same (and ``done()`` agrees); whether it settled."""
    while time.perf_counter() - t0 < SETTLE_TIMEOUT_S:
        try:
            png = await page.screenshot(type="png", scale="css")
        except Exception:  # one capture refused under load: take the next
            continue
        shots.append((time.perf_counter() - t0, png))
        still = (
            len(shots) >= 5 and shots[-1][1] == shots[-2][1] == shots[-3][1] == shots[-4][1] != shots[0][1]
        )
        if still and await done():
            return True
    return False


async def measure(browser: Any, base: str, url: str, res: Load) -> None:
    context = await browser.new_context(
        viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=DPR, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    page.on("pageerror", lambda e: res.errors.append(str(e)[:160]))
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    await cdp.send("Network.emulateNetworkConditions", NETWORK)
    if res.compression == "off":
        await cdp.send("Network.setExtraHTTPHeaders", {"headers": {"Accept-Encoding": "identity"}})
    await cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
    received: list[int] = []
    urls: dict[str, str] = {}
    model_in: list[bool] = []

    def finished(e: dict[str, Any]) -> None:
        received.append(int(e.get("encodedDataLength", 0)))
        if urlsplit(urls.get(e["requestId"], "")).path.startswith("/scenes/"):
            model_in.append(True)

    cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"]))
    cdp.on("Network.loadingFinished", finished)

    judge_ctx = await browser.new_context()
    judge = await judge_ctx.new_page()

    async def ours_done() -> bool:
        # a still picture before the model has arrived is a loading screen, not the result
        if not model_in:
            return False
        if res.viewer == "foto3d":
            return bool(await page.evaluate("document.querySelector('foto3d-viewer')?.state === 'ready'"))
        # the peer says nothing: still, and showing something besides its background (judged
        # in an unthrottled page)
        last = base64.b64encode(shots[-1][1]).decode()
        verdict = await judge.evaluate(_JUDGE, [last])
        return float(verdict["objectShare"]) > 0.005

    shots: list[tuple[float, bytes]] = []
    t0 = time.perf_counter()
    await page.goto(base + url, wait_until="commit")
    settled = await screenshots_until_still(page, t0, shots, ours_done)
    res.bytes = sum(received)
    if settled:
        await page.evaluate(_OBSERVE)
        if res.viewer == "foto3d":
            await page.evaluate(_OWN_FRAMES)
        for dx in (150.0, -150.0):
            await swipe(cdp, WIDTH / 2 - dx / 2, HEIGHT / 2, dx)
        after: list[tuple[float, bytes]] = []
        # a screenshot waits for a frame, seconds each here: the window is cut off from outside
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                screenshots_until_still(page, time.perf_counter(), after, ours_done), SWIPE_WINDOW_S
            )
        perf = await page.evaluate("window.__phone")
        by_interaction: dict[int, float] = {}
        for iid, duration in perf["events"]:
            by_interaction[iid] = max(by_interaction.get(iid, 0.0), duration)
        res.inp_ms = max(by_interaction.values(), default=0.0)
        res.longtask_ms = float(sum(perf["longtasks"]))
        res.longest_task_ms = float(max(perf["longtasks"], default=0.0))
        if res.viewer == "foto3d":
            res.frame_callback_ms = round(float(max(await page.evaluate("window.__own"), default=0.0)), 1)
    await context.close()
    if not settled:
        res.errors.append("never settled")
        await judge_ctx.close()
        return
    verdict = await judge.evaluate(_JUDGE, [base64.b64encode(p).decode() for _, p in shots])
    await judge_ctx.close()
    res.height_share = round(float(verdict["heightShare"]), 3)
    res.settled_s = round(shots[-4][0], 2)
    for (t, _), like in zip(shots, verdict["like"], strict=True):
        if like >= 0.9:
            res.first_s = round(t, 2)
            break


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present and len(present) == len(values) else None


def summary(loads: list[Load]) -> list[str]:
    groups: dict[tuple[str, str, str], list[Load]] = {}
    for r in loads:
        groups.setdefault((r.scene, r.compression, r.viewer), []).append(r)
    lines = [
        "| scene | compression | viewer | loads | bytes | first picture | settled | height share | INP"
        " | long tasks (total) | longest task | viewer's longest frame callback |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def fmt(v: float | None, unit: str, digits: int = 2) -> str:
        return "—" if v is None else f"{v:.{digits}f} {unit}".strip()

    for (scene, comp, viewer), rs in groups.items():
        lines.append(
            f"| {scene} | {comp} | {viewer} | {len(rs)} | {statistics.median(r.bytes for r in rs):,.0f} | "
            f"{fmt(median([r.first_s for r in rs]), 's')} | {fmt(median([r.settled_s for r in rs]), 's')} | "
            f"{fmt(median([r.height_share for r in rs]), '')} | {fmt(median([r.inp_ms for r in rs]), 'ms', 0)} | "
            f"{fmt(median([r.longtask_ms for r in rs]), 'ms', 0)} | {fmt(median([r.longest_task_ms for r in rs]), 'ms', 0)} | "
            f"{fmt(median([r.frame_callback_ms for r in rs]), 'ms', 0)} |"
        )
    return lines


async def run(scenes: Path, names: list[str], repeat: int, compressions: list[str]) -> list[Load]:
    out: list[Load] = []
    async with browser_and_site(scenes) as (browser, _app, _base):
        # our own app (the compression middleware, the phone page), beside bench_viewer's browser
        runner = web.AppRunner(make_app(scenes))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        try:
            for name in names:
                q = quote(f"{name}.compressed.ply")
                pages = {
                    "foto3d": f"/ours?file={q}",
                    "supersplat": f"/supersplat/index.html?content=/scenes/{q}&settings=/settings-nocam.json&webgl&noui&noanim",
                }
                for comp in compressions:
                    for _ in range(repeat):
                        for viewer, url in pages.items():  # alternating: a slow spell falls on both
                            res = Load(name, viewer, comp)
                            await measure(browser, base, url, res)
                            out.append(res)
                            print(json.dumps(res.__dict__), flush=True)
        finally:
            await runner.cleanup()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenes", type=Path, help="bench/fetch_scenes.py's folder")
    ap.add_argument(
        "--scenes", dest="names", default="guitar,biker", help="scene names (default guitar,biker)"
    )
    ap.add_argument("--repeat", type=int, default=3, help="loads per viewer (default 3)")
    ap.add_argument("--compression", default="on", help="on, off or on,off (default on)")
    ap.add_argument("--json", type=Path, help="also write the loads here")
    args = ap.parse_args()
    names = [n for n in args.names.split(",") if n]
    for name in names:
        target = args.scenes / f"{name}.compressed.ply"
        source = args.scenes / "src" / name / f"{name}.compressed.ply"
        if not target.exists() and source.exists():
            shutil.copyfile(source, target)
        if not target.exists():
            raise SystemExit(f"no {target}: run bench/fetch_scenes.py")
    compressions = [c for c in args.compression.split(",") if c in ("on", "off")]
    b = assets.bundle()
    print(
        f"bundle {b.file}: {b.bytes:,} bytes; {WIDTH}x{HEIGHT} at DPR {DPR}, touch, CPU {CPU_SLOWDOWN}x slower,"
        f" 1.6 Mbit/s down, 150 ms RTT, cold cache, SwiftShader"
    )
    loads = asyncio.run(run(args.scenes, names, max(1, args.repeat), compressions))
    print()
    print(
        "\n".join(summary(loads)),
    )
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in loads], indent=2))
    for r in loads:
        if r.errors:
            print(f"{r.scene} {r.viewer} {r.compression}: {r.errors[:3]}", file=sys.stderr)


if __name__ == "__main__":
    main()
