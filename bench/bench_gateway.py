"""Token gateway benchmark: requests/s and p50/p99 at 64 concurrent clients on loopback.

Measures, in one run and on one machine:

- ``GET /v1/models/{id}`` (secret token, status check, viewer config, a signed link per file,
  access log over the bus) against a bare aiohttp handler answering the same JSON bytes;
- signed-link downloads ``GET /v1/files/...`` (HMAC and expiry check, live status and
  credential check, access log) against a bare aiohttp ``FileResponse`` of the same file.

The servers run in this process; the load comes from a separate process (``http_load.py``), so the
client does not share the server's event loop. The ratio column is gateway/bare for req/s.
The file served is ``--file`` (pass a real splat); without it, 1.5 MB of random bytes, the
size of a real product capture's compressed.ply (HTTP serving does not depend on the content).

    .venv/bin/python bench/bench_gateway.py                 # ~30 s
    .venv/bin/python bench/bench_gateway.py --seconds 3 --file scene.compressed.ply
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import msgspec
from aiohttp import web
from http_load import add_load_options, run_load

from foto3d.app.registry import by_name
from foto3d.app.runtime import Runtime
from foto3d.libs.bus.connection import Bus, connect
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.gateway import TOKENS_ISSUE, CredentialKind, IssueRequest
from foto3d.proto.objects import (
    LiveStatus,
    ObjectPublished,
    ObjectRegistered,
    ObjectStatusChanged,
    PublishedFile,
)
from foto3d.services.token_gateway.service import TokenGateway
from testkit.identities import auth_includes, use_session_identities

OID = "bench-guitar-001"


# -- the servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def bare_server(model_json: bytes, file_path: Path) -> tuple[web.AppRunner, str]:
    async def model(_: web.Request) -> web.Response:
        return web.Response(body=model_json, content_type="application/json")

    async def download(_: web.Request) -> web.FileResponse:
        return web.FileResponse(file_path, headers={"Content-Type": "application/octet-stream"})

    app = web.Application()
    app.router.add_get("/model", model)
    app.router.add_get("/file", download)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def publish(bus_url: str, published: Path, payload: bytes) -> None:
    bus = await connect([bus_url], "bench")
    prefix = f"models/bench/{OID}/v1"
    files = {
        f"{OID}.compressed.ply": ("splat", "compressed-ply", payload),
        "viewer.json": (
            "viewer_config",
            "json",
            json.dumps({"camera": {"fov": 45}, "name": "Guitar"}).encode(),
        ),
        "thumbnail.png": ("thumbnail", "png", b"\x89PNG" + os.urandom(20_000)),
    }
    pub: list[PublishedFile] = []
    for name, (kind, fmt, data) in files.items():
        path = published / prefix / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        pub.append(
            PublishedFile(
                kind=kind, format=fmt, key=f"{prefix}/{name}", url="", bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(), content_type="application/octet-stream",
            )
        )  # fmt: skip
    now = time.time()
    for ev in (
        ObjectRegistered(
            event_id="r", object_id=OID, ts=now, customer="bench", display_name="Guitar", slug="g", serial=1
        ),
        ObjectPublished(event_id="p", object_id=OID, ts=now, version=1, job_id="j", live_url="", files=pub),
        ObjectStatusChanged(event_id="s", object_id=OID, ts=now, status=LiveStatus.PRODUCTION),
    ):
        await bus.publish(subjects.object_events(OID), ev, msg_id=ev.event_id)
    await bus.close()


@asynccontextmanager
async def running_gateway(
    prefix: str, payload: bytes, **limits: float
) -> AsyncIterator[tuple[TokenGateway, str, Bus]]:
    """One gateway on its own NATS server, with the bench model published: the gateway, its
    URL and its bus. ``limits`` are gateway settings on top of the lifted per-IP and
    per-credential buckets."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = Path(tmp)
        # Authorization on, as a site runs (issuing a credential is a signed management request).
        use_session_identities()
        nats = NatsServer(store_dir=root / "nats", port=free_port(), includes=auth_includes()).start()
        settings = Settings.load(data_dir=root / "data", nats=nats.client_url, http_port=0)
        settings.raw["token_gateway"] = {
            "port": 0,
            # one client address generates all the load: lift the per-IP and per-credential buckets
            "ip_rate": 1e9, "ip_burst": 1_000_000, "credential_rate": 1e9, "credential_burst": 1_000_000,
            **limits,
        }  # fmt: skip
        rt = Runtime(settings, [nats.client_url], [by_name("token_gateway")], http=False)
        try:
            await rt.start()
            svc = rt.services[0]
            assert isinstance(svc, TokenGateway) and svc.listener is not None
            await publish(nats.client_url, settings.data_dir / "published", payload)
            yield svc, svc.listener.url, rt.buses["token_gateway"]
        finally:
            await rt.stop()
            nats.stop()


async def served_model(model_url: str, headers: dict[str, str]) -> bytes:
    """The model reply, once the gateway has folded the published events and serves it."""
    async with aiohttp.ClientSession() as s:
        for _ in range(100):
            async with s.get(model_url, headers=headers) as r:
                if r.status == 200:
                    return await r.read()
            await asyncio.sleep(0.05)
    raise RuntimeError("the gateway never served the bench model")


async def main(args: argparse.Namespace) -> int:
    payload = Path(args.file).read_bytes() if args.file else os.urandom(1_500_000)
    async with running_gateway("f3d-bench-gw-", payload) as (svc, gw_url, bus):
        assert svc.parts is not None
        issued = await bus.call(TOKENS_ISSUE, IssueRequest(customer="bench", kind=CredentialKind.SECRET))
        assert issued.token
        auth = {"Authorization": f"Bearer {issued.token}"}
        model_url = f"{gw_url}/v1/models/{OID}"
        body = await served_model(model_url, auth)
        link = msgspec.json.decode(body)["files"][0]["url"]
        file_path = svc.parts.local_file(f"models/bench/{OID}/v1/{OID}.compressed.ply")
        runner, bare = await bare_server(body, file_path)
        try:
            rows = [
                ("GET /v1/models/{id}", await run_load(model_url, args, headers=auth),
                 await run_load(bare + "/model", args)),
                (f"signed download ({len(payload) / 1e6:.1f} MB)", await run_load(link, args),
                 await run_load(bare + "/file", args)),
            ]  # fmt: skip
        finally:
            await runner.cleanup()
    print(
        f"{args.clients} concurrent clients, {args.seconds:g} s each after {args.warmup:g} s warm-up, loopback"
    )
    print(f"{'case':<28} {'server':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'ratio':>6}")
    for name, gw, base in rows:
        ratio = gw["rps"] / base["rps"] if base["rps"] else 0.0
        for label, res, rat in (("gateway", gw, f"{ratio:.2f}x"), ("bare", base, "")):
            print(
                f"{name:<28} {label:<8} {res['rps']:>9.0f} {res['p50_ms']:>8.1f} {res['p99_ms']:>8.1f} "
                f"{res['errors']:>6} {rat:>6}"
            )
    per_minute = rows[0][1]["rps"] * 60
    print(f"model lookups one instance answers per minute: {per_minute:,.0f} (goal: 100,000)")
    return 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_load_options(p)
    p.add_argument("--file", help="a real splat file to serve (default: 1.5 MB of random bytes)")
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
