"""Overhead of /metrics on the log collector's ingest: the same run, with and without a scrape
every second.

One nats-server and one ``foto3d serve log_collector`` process (HTTP on, a metrics token set);
the SDK ships ``--records`` records per round from this process. Rounds alternate: quiet,
scraped, quiet, scraped, … (``--rounds`` of each), so drift in the machine's other load hits
both alike. Per round: records/s from first emit to last commit, and the collector's CPU time
per record (user + system, from /proc: the steadier figure on a shared machine).

Usage: .venv/bin/python bench/bench_metrics.py [--records 200000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench_logs import committed, cpu_seconds

from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import connect
from foto3d.libs.bus.topology import provision
from foto3d.libs.logsdk import LogShipper
from foto3d.libs.nats_server import NatsServer

TOKEN = "bench-token"


def scraper(url: str, stop: threading.Event, count: list[int], took: list[float]) -> None:
    req = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    while not stop.wait(1.0):
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
        took.append(time.perf_counter() - t0)
        count[0] += 1


def one_round(
    nats_url: str, http_url: str, pid: int, db: Path, spool: Path, n: int, scrape: bool
) -> tuple[float, float, int, float]:
    start = committed(db)
    stop = threading.Event()
    count: list[int] = [0]
    took: list[float] = []
    t = threading.Thread(target=scraper, args=(http_url, stop, count, took)) if scrape else None
    sh = LogShipper(
        "bench",
        f"metrics-{time.time_ns()}",
        nats_urls=[nats_url],
        spool_dir=spool,
        heartbeat=False,
        queue_max=n + 1000,  # the whole round fits: a dropped record would never be committed
    )
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    if t:
        t.start()
    for i in range(n):
        sh.emit(20, f"step {i} loss 0.0{i % 97} psnr 2{i % 9}.5 gaussians {i * 7}", logger="bench")
    deadline = time.monotonic() + 300
    while committed(db) < start + n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {committed(db) - start} of {n} records committed: {sh.stats()}")
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    cpu_us = (cpu_seconds(pid) - cpu0) / n * 1e6
    stop.set()
    if t:
        t.join()
    sh.close(30)
    return n / elapsed, cpu_us, count[0], statistics.median(took) * 1000 if took else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        folder = Path(tmp)
        server = NatsServer(store_dir=folder / "nats").start()
        proc = None
        try:

            async def setup() -> None:
                bus = await connect([server.client_url], "bench-setup")
                await provision(bus.js, assemble())
                await bus.close()

            asyncio.run(setup())
            data = folder / "collector"
            env = {**os.environ, "FOTO3D_DATA": str(data), "FOTO3D_METRICS_TOKEN": TOKEN}
            env.pop("FOTO3D_NATS_URL", None)
            proc = subprocess.Popen(
                [sys.executable, "-m", "foto3d.cli.main", "serve", "log_collector", "--nats", server.client_url,
                 "--port", "0"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            assert proc.stdout is not None
            line = proc.stdout.readline()
            m = re.search(r"\(HTTP (http://\S+)\)", line)
            if not m:
                raise RuntimeError(f"the collector did not start: {line!r}")
            http_url = m.group(1)
            db = data / "log_collector" / "logs.db"
            load = os.getloadavg()[0]
            rows = []
            for r in range(args.rounds):
                for scrape in (False, True):
                    rate, cpu, scrapes, ms = one_round(
                        server.client_url, http_url, proc.pid, db, folder / "spool", args.records, scrape
                    )
                    rows.append((r + 1, scrape, rate, cpu, scrapes, ms))
            load = max(load, os.getloadavg()[0])
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)
            server.stop()
    print(
        f"/metrics overhead on log ingest ({os.cpu_count()} CPUs, load ≤ {load:.1f}, {args.records} records/round)"
    )
    print()
    print("| round | scraping every 1 s | records/s | collector CPU µs/record | scrapes | median scrape ms |")
    print("|---|---|---|---|---|---|")
    for r, scrape, rate, cpu, scrapes, ms in rows:
        print(f"| {r} | {'yes' if scrape else 'no'} | {rate:,.0f} | {cpu:.2f} | {scrapes} | {ms:.1f} |")
    quiet = [x[3] for x in rows if not x[1]]
    scraped = [x[3] for x in rows if x[1]]
    print()
    print(f"CPU per record: {statistics.mean(quiet):.2f} µs quiet, {statistics.mean(scraped):.2f} µs scraped "
          f"({(statistics.mean(scraped) / statistics.mean(quiet) - 1) * 100:+.1f} %)")  # fmt: skip


if __name__ == "__main__":
    main()
