"""HTTP load for the gateway benches: concurrent clients on one URL, req/s and p50/p99.

The load runs in a child process (this file run as a script), so the client does not share the
event loop of the server it measures. Requests made during the warm-up are not timed, but the
``accepted`` count includes them: a server that folds what it accepted (the beacon sums) holds
the warm-up's requests too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from typing import Any

import aiohttp


async def measure(
    url: str,
    *,
    method: str,
    headers: dict[str, str],
    body: bytes | None,
    ok_status: int,
    clients: int,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """Run ``clients`` loops of requests on one session for ``warmup + seconds``."""
    latencies: list[float] = []
    errors = 0
    accepted = 0
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn) as s:
        loop = asyncio.get_running_loop()
        measure_from = loop.time() + warmup
        stop_at = measure_from + seconds

        async def client() -> None:
            nonlocal errors, accepted
            while True:
                t0 = loop.time()
                if t0 >= stop_at:
                    return
                async with s.request(method, url, data=body, headers=headers) as r:
                    await r.read()
                    ok = r.status == ok_status
                t1 = loop.time()
                accepted += ok
                if t0 >= measure_from:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    latencies.sort()
    n = len(latencies)
    return {
        "rps": n / seconds,
        "p50_ms": latencies[n // 2] * 1000 if n else 0.0,
        "p95_ms": latencies[min(n - 1, int(n * 0.95))] * 1000 if n else 0.0,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        "errors": errors,
        "n": n,
        "accepted": accepted,
    }


def add_load_options(p: argparse.ArgumentParser) -> None:
    """The options :func:`run_load` reads from a bench's arguments."""
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per case")
    p.add_argument("--warmup", type=float, default=1.0)


async def run_load(
    url: str,
    args: argparse.Namespace,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    ok_status: int = 200,
) -> dict[str, Any]:
    """Measure ``url`` from a child process with the bench's ``clients``/``seconds``/``warmup``."""
    cmd = [
        sys.executable, __file__, url, "--method", method, "--headers", json.dumps(headers or {}),
        "--ok-status", str(ok_status),
        "--clients", str(args.clients), "--seconds", str(args.seconds), "--warmup", str(args.warmup),
    ]  # fmt: skip
    if body is not None:
        cmd += ["--body", body.decode()]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed for {url}")
    result: dict[str, Any] = json.loads(out)
    return result


def _child(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--method", default="GET")
    p.add_argument("--headers", default="{}")
    p.add_argument("--body")
    p.add_argument("--ok-status", type=int, default=200)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--warmup", type=float, required=True)
    a = p.parse_args(argv)
    out = asyncio.run(
        measure(
            a.url,
            method=a.method,
            headers=json.loads(a.headers),
            body=a.body.encode() if a.body is not None else None,
            ok_status=a.ok_status,
            clients=a.clients,
            seconds=a.seconds,
            warmup=a.warmup,
        )
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
