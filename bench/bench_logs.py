"""Log server benchmark: store insert rate, JetStream baselines, end-to-end rate, collector memory.

In one run, on one embedded nats-server (JetStream in a temp folder):

(a) raw store insert rate: ``LogStore.insert`` of pre-built rows, 1,000 per
    ``executemany`` transaction, with the FTS index and every secondary index;
(b) one JetStream message per record: ``js.publish`` awaited one at a time, and
    pipelined (``publish_async``, many in flight);
(c) end to end: ``LogShipper.emit`` -> NATS -> the collector (``foto3d serve
    log_collector`` in its own process) -> committed in sqlite, for ``--records``
    records; timed from the first emit until the last record is committed. The
    collector's peak RSS (VmHWM) is read from /proc at the end.
(d) with ``--tls``: (c) again in the same run against a second server whose client port
    requires mutual TLS with a private CA (``libs/bus/tls.py``), the cost of TLS on ingest.

Usage: .venv/bin/python bench/bench_logs.py [--records 1000000] [--insert-rows 200000]
       [--baseline 20000] [--sources 2] [--tls]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgspec

from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import connect
from foto3d.libs.bus.tls import TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV, create_ca, issue, server_tls_block
from foto3d.libs.bus.topology import provision
from foto3d.libs.logsdk import LogShipper
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.logs import LogBatch, LogRecord
from foto3d.services.log_collector.store import LogStore, Row

WORDS = [
    "step",
    "loss",
    "psnr",
    "gaussians",
    "densify",
    "prune",
    "iteration",
    "checkpoint",
    "saved",
    "image",
    "camera",
    "ssim",
    "lpips",
]


def message(rng: random.Random, i: int) -> str:
    return f"{' '.join(rng.choices(WORDS, k=6))} {i} loss {rng.random():.4f}"


async def store_insert_rate(folder: Path, total: int) -> tuple[float, float]:
    """(a) rows/s through the store, 1,000 rows per transaction; and CPU µs per row."""
    rng = random.Random(1)
    now = time.time()
    batches: list[list[Row]] = []
    for b in range(total // 1000):
        batches.append(
            [
                (
                    "trainer",
                    "gpu-1",
                    b * 1000 + i,
                    now,
                    20,
                    "train",
                    "host",
                    "job-1",
                    "obj-1",
                    message(rng, i),
                    "",  # no exception text
                )
                for i in range(1000)
            ]
        )
    store = await LogStore(folder / "raw.db").open()
    t0, c0 = time.perf_counter(), time.process_time()
    for rows in batches:
        await store.insert(rows)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    await store.close()
    n = len(batches) * 1000
    return n / elapsed, cpu / n * 1e6


def one_record_batch(i: int) -> bytes:
    rec = LogRecord(ts=time.time(), seq=i, level=20, message=f"step {i} loss 0.1250")
    return msgspec.json.encode(
        LogBatch(batch_id=f"b{i}", source_kind="bench", source_id="one", host="h", records=[rec])
    )


async def js_baselines(url: str, n: int) -> tuple[float, float]:
    """(b) records/s with one message per record: awaited one by one, and pipelined."""
    bus = await connect([url], "bench-baseline")
    subj = subjects.logs("bench", "one")
    payloads = [one_record_batch(i) for i in range(2 * n)]
    t0 = time.perf_counter()
    for i in range(n):
        await bus.js.publish(subj, payloads[i], headers={"Nats-Msg-Id": f"a{i}"})
    awaited = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(n, 2 * n):
        await bus.js.publish_async(subj, payloads[i], headers={"Nats-Msg-Id": f"p{i}"})
    await bus.js.publish_async_completed()
    pipelined = n / (time.perf_counter() - t0)
    # The collector must not count these: purge them before (c).
    await bus.js.purge_stream("LOGS")
    await bus.close()
    return awaited, pipelined


def committed(db: Path) -> int:
    """Records committed, read from the store file (the autoincrement high-water mark)."""
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute("SELECT seq FROM sqlite_sequence WHERE name = 'logs'").fetchone()
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()
    return int(row[0]) if row else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def end_to_end(
    url: str, folder: Path, total: int, sources: int
) -> tuple[float, float, float, float, dict[str, int]]:
    """(c) records/s from first emit to last commit; emit-side rate; collector peak RSS, CPU µs/record."""
    data = folder / "collector"
    env = {**os.environ, "FOTO3D_DATA": str(data)}
    env.pop("FOTO3D_NATS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "foto3d.cli.main", "serve", "log_collector", "--nats", url, "--no-http"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "is running" not in line:
            raise RuntimeError(f"collector did not start: {line!r}")
        db = data / "log_collector" / "logs.db"
        cpu0 = cpu_seconds(proc.pid)
        shippers = [
            LogShipper(
                "bench",
                f"src-{k}",
                nats_urls=[url],
                spool_dir=folder / f"spool-{k}",
                queue_max=total + 1000,
                heartbeat=False,
            )
            for k in range(sources)
        ]
        rng = random.Random(2)
        texts = [message(rng, i) for i in range(1000)]
        per_source = total // sources

        def emit_all(sh: LogShipper) -> None:
            for i in range(per_source):
                sh.emit(20, texts[i % 1000], logger="bench.train", job_id="job-bench")

        t0 = time.perf_counter()
        threads = [threading.Thread(target=emit_all, args=(sh,)) for sh in shippers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        emitted = time.perf_counter() - t0
        want = per_source * sources
        while committed(db) < want:
            if proc.poll() is not None:
                raise RuntimeError("the collector died")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        cpu_us = (cpu_seconds(proc.pid) - cpu0) / want * 1e6
        stats: dict[str, int] = {}
        for sh in shippers:
            sh.close(30)
            for k, v in sh.stats().items():
                stats[k] = stats.get(k, 0) + v
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    return want / elapsed, want / emitted, rss, cpu_us, stats


def end_to_end_tls(folder: Path, total: int, sources: int) -> float:
    """(d): (c) against a server that requires mutual TLS; the clients find it in the environment."""
    tls_dir = folder / "tls"
    tls_dir.mkdir()
    create_ca(tls_dir)
    server_files = issue(tls_dir, tls_dir / "server", "server", ("127.0.0.1",))
    client_files = issue(tls_dir, tls_dir / "client", "client")
    os.environ |= {TLS_CA_ENV: str(client_files.ca), TLS_CERT_ENV: str(client_files.cert)}
    os.environ[TLS_KEY_ENV] = str(client_files.key)
    sub = folder / "with-tls"
    sub.mkdir()
    server = NatsServer(store_dir=sub / "nats", config_text=server_tls_block(server_files) + "\n").start()
    try:

        async def setup() -> None:
            bus = await connect([server.client_url], "bench-setup")
            await provision(bus.js, assemble())
            await bus.close()

        asyncio.run(setup())
        rate, *_ = end_to_end(server.client_url, sub, total, sources)
        return rate
    finally:
        server.stop()
        for name in (TLS_CA_ENV, TLS_CERT_ENV, TLS_KEY_ENV):
            os.environ.pop(name, None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="records for (c), default 1,000,000")
    ap.add_argument("--insert-rows", type=int, default=200_000, help="rows for (a), default 200,000")
    ap.add_argument("--baseline", type=int, default=20_000, help="messages for each (b) variant")
    ap.add_argument("--sources", type=int, default=2, help="log sources (shippers) in (c), default 2")
    ap.add_argument("--tls", action="store_true", help="also (d): (c) over mutual TLS, same run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
        folder = Path(tmp)
        server = NatsServer(store_dir=folder / "nats").start()
        try:

            async def setup_and_baselines() -> tuple[float, float, float, float]:
                bus = await connect([server.client_url], "bench-setup")
                await provision(bus.js, assemble())
                await bus.close()
                a, a_cpu = await store_insert_rate(folder, args.insert_rows)
                b1, b2 = await js_baselines(server.client_url, args.baseline)
                return a, a_cpu, b1, b2

            load = os.getloadavg()[0]
            a, a_cpu, b_awaited, b_pipelined = asyncio.run(setup_and_baselines())
            c, emit_rate, rss, c_cpu, stats = end_to_end(
                server.client_url, folder, args.records, args.sources
            )
            load = max(load, os.getloadavg()[0])
        finally:
            server.stop()
        d = end_to_end_tls(folder, args.records, args.sources) if args.tls else None
    b = max(b_awaited, b_pipelined)
    print(f"Log server benchmark ({os.cpu_count()} CPUs, Python {sys.version.split()[0]})")
    print()
    print("| measurement | records/s |")
    print("|---|---|")
    print(f"| (a) store insert, executemany 1,000 rows/transaction, FTS + indexes | {a:,.0f} |")
    print(f"| (b) JetStream, one message per record, `js.publish` awaited | {b_awaited:,.0f} |")
    print(f"| (b) JetStream, one message per record, `publish_async` pipelined | {b_pipelined:,.0f} |")
    print(
        f"| (c) end to end, SDK -> NATS -> collector -> committed ({args.records:,} records) | **{c:,.0f}** |"
    )
    if d is not None:
        print(f"| (d) the same as (c) over mutual TLS (private CA, P-256) | **{d:,.0f}** |")
    print()
    if d is not None:
        print(f"TLS costs {(1 - d / c) * 100:.0f}% of end-to-end ingest ((d) / (c) = {d / c:.2f})")
    print(f"(c) / (a) = {c / a:.2f}   (goal >= 0.5)")
    print(f"(c) / best (b) = {c / b:.1f}x   (goal >= 4)")
    print(f"(c) >= 100,000 records/s: {'yes' if c >= 100_000 else 'NO'}")
    print(f"emit rate in the caller threads: {emit_rate:,.0f} records/s")
    print(f"CPU per record: store alone {a_cpu:.2f} µs (a), collector process {c_cpu:.2f} µs (c)")
    print(f"collector peak RSS: {rss:.0f} MiB")
    print(f"1-minute load average during the run: up to {load:.1f} (other work on this machine skews rates)")
    print(f"shippers: {stats}")


if __name__ == "__main__":
    main()
