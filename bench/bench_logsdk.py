"""Log SDK benchmark: the caller's cost per ``logger.info`` and the SDK's publish rate.

Starts its own nats-server (JetStream, temp folder) with the LOGS stream, then:

1. caller cost per ``logger.info`` (median, p99) with NatsLogHandler attached and
   NATS up, against two baselines timed the same way in the same run: a handler
   that does nothing (logging's own overhead) and a FileHandler (today's way:
   a local log file);
2. the SDK's publish throughput: records/s from the first ``emit`` until
   JetStream acknowledged the last batch, against one JetStream message per
   record (``publish_async``, pipelined) as the baseline.

Usage: .venv/bin/python bench/bench_logsdk.py [--calls 200000] [--records 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from foto3d.app.topology import assemble
from foto3d.libs.bus.connection import connect
from foto3d.libs.bus.topology import provision
from foto3d.libs.logsdk import LogShipper, NatsLogHandler
from foto3d.libs.nats_server import NatsServer
from foto3d.proto.logs import LogRecord


class NullHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        record.getMessage()


def caller_cost(handler: logging.Handler, calls: int) -> tuple[float, float]:
    """Median and p99 in microseconds of one ``logger.info`` call."""
    log = logging.getLogger(f"bench.{type(handler).__name__}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    samples = [0] * calls
    clock = time.perf_counter_ns
    for i in range(calls):
        t0 = clock()
        log.info("step %d loss %.4f", i, 0.125)
        samples[i] = clock() - t0
    log.removeHandler(handler)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(calls * 0.99)] / 1000


async def baseline_one_message_per_record(url: str, n: int) -> float:
    bus = await connect([url], "bench-baseline")
    payload = msgspec.json.encode(LogRecord(ts=time.time(), seq=1, level=20, message="step 1 loss 0.1250"))
    t0 = time.perf_counter()
    for i in range(n):
        await bus.js.publish_async(
            "f3d.logs.bench.baseline", payload, headers={"Nats-Msg-Id": f"b{i}"}, wait_stall=5.0
        )
    await bus.js.publish_async_completed()
    rate = n / (time.perf_counter() - t0)
    await bus.close()
    return rate


def sdk_throughput(url: str, spool: Path, n: int) -> tuple[float, dict[str, int]]:
    s = LogShipper("bench", "throughput", nats_urls=[url], spool_dir=spool, queue_max=n + 10)
    s.flush(30)  # connected before the clock starts
    t0 = time.perf_counter()
    emit = s.emit
    for i in range(n):
        emit(20, f"step {i} loss 0.1250", logger="train")
    ok = s.flush(600)
    rate = n / (time.perf_counter() - t0)
    stats = s.stats()
    s.close()
    if not ok:
        raise SystemExit("flush did not complete")
    return rate, stats


async def provision_logs(url: str) -> None:
    bus = await connect([url], "bench-provision")
    await provision(bus.js, assemble())
    await bus.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--calls", type=int, default=200_000, help="logger.info calls per handler (default 200000)"
    )
    ap.add_argument("--records", type=int, default=1_000_000, help="records for the throughput run")
    ap.add_argument(
        "--baseline-records", type=int, default=50_000, help="records for the 1-per-message baseline"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = NatsServer(store_dir=root / "nats").start()
        try:
            asyncio.run(provision_logs(server.client_url))
            null_med, null_p99 = caller_cost(NullHandler(), args.calls)
            fh = logging.FileHandler(root / "train.log")
            file_med, file_p99 = caller_cost(fh, args.calls)
            fh.close()
            shipper = LogShipper("bench", "caller", nats_urls=[server.client_url], spool_dir=root / "spool")
            shipper.flush(30)
            h = NatsLogHandler(shipper)
            sdk_med, sdk_p99 = caller_cost(h, args.calls)
            delivered = shipper.flush(60)
            cstats = shipper.stats()
            h.close()
            print(f"caller cost per logger.info over {args.calls} calls (µs):")
            print(f"  no-op handler (logging itself) median {null_med:6.2f}  p99 {null_p99:6.2f}")
            print(f"  FileHandler (local file)       median {file_med:6.2f}  p99 {file_p99:6.2f}")
            print(f"  NatsLogHandler (NATS up)       median {sdk_med:6.2f}  p99 {sdk_p99:6.2f}")
            print(
                f"  ratio SDK/file median {sdk_med / file_med:.2f}; SDK/no-op median {sdk_med / null_med:.2f}"
            )
            print(
                f"  shipped {cstats['published_records']} records, dropped {cstats['dropped']}, "
                f"all acknowledged: {delivered}"
            )
            base = asyncio.run(baseline_one_message_per_record(server.client_url, args.baseline_records))
            rate, stats = sdk_throughput(server.client_url, root / "spool2", args.records)
            per_batch = stats["published_records"] / max(1, stats["published_batches"])
            print(f"SDK publish throughput, {args.records} records emit->acked: {rate:,.0f} records/s")
            print(
                f"  ({stats['published_batches']} messages, {per_batch:.0f} records each, dropped {stats['dropped']})"
            )
            print(f"baseline: one JetStream message per record (publish_async): {base:,.0f} records/s")
            print(f"  ratio SDK/baseline {rate / base:.1f}x")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
