"""Log path encoding: msgspec JSON against msgspec msgpack for real log batches.

The records are the lines of a real system log (``/var/log/dpkg.log`` by default, or
``--log FILE``), 1,000 per batch like the SDK sends. For each encoding it measures the
encoded size and the CPU time to encode a batch (the SDK's side) and to decode and
validate it (the collector's and notifier's side), best of ``--rounds``. The ratio is
msgpack / JSON in the same run.

Usage: .venv/bin/python bench/bench_log_encoding.py [--log /var/log/dpkg.log] [--rounds 20]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from foto3d.proto.logs import LogBatch, LogRecord

BATCH = 1000


def batches_from(path: Path) -> list[LogBatch]:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    records = [
        LogRecord(
            ts=1_700_000_000.0 + i, seq=i, level=20 if "status" in ln else 30, message=ln, logger="dpkg"
        )
        for i, ln in enumerate(lines)
    ]
    return [
        LogBatch(
            batch_id=f"b{n}", source_kind="host", source_id="bench", host="h", records=records[n : n + BATCH]
        )
        for n in range(0, len(records), BATCH)
    ]


def best(rounds: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, default=Path("/var/log/dpkg.log"))
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    batches = batches_from(args.log)
    n = sum(len(b.records) for b in batches)
    json_dec = msgspec.json.Decoder(LogBatch)
    msgpack_dec = msgspec.msgpack.Decoder(LogBatch)
    codecs: dict[str, tuple[Callable[[LogBatch], bytes], Callable[[bytes], LogBatch]]] = {
        "json": (msgspec.json.Encoder().encode, json_dec.decode),
        "msgpack": (msgspec.msgpack.Encoder().encode, msgpack_dec.decode),
    }
    results: dict[str, tuple[int, float, float]] = {}
    for name, (encode, decode) in codecs.items():
        payloads = [encode(b) for b in batches]
        assert [decode(p) for p in payloads] == batches
        size = sum(len(p) for p in payloads)
        t_enc = best(args.rounds, lambda encode=encode: [encode(b) for b in batches])  # type: ignore[misc]
        t_dec = best(args.rounds, lambda decode=decode, p=payloads: [decode(x) for x in p])  # type: ignore[misc]
        results[name] = (size, t_enc, t_dec)
    print(f"{n} records from {args.log} in {len(batches)} batches of up to {BATCH}")
    print(f"{'encoding':<9} {'bytes/record':>13} {'encode µs/record':>17} {'decode µs/record':>17}")
    for name, (size, t_enc, t_dec) in results.items():
        print(f"{name:<9} {size / n:>13.1f} {t_enc / n * 1e6:>17.3f} {t_dec / n * 1e6:>17.3f}")
    js, mp = results["json"], results["msgpack"]
    print(f"msgpack / json: size {mp[0] / js[0]:.2f}, encode {mp[1] / js[1]:.2f}, decode {mp[2] / js[2]:.2f}")


if __name__ == "__main__":
    main()
