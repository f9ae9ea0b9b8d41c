"""Viewer beacon ingest on one token gateway instance: events/s, beside the model lookup's rate.

In one run, on one gateway, with 64 concurrent clients on loopback (the load from a separate
process, so the client does not share the gateway's event loop):

- ``GET /v1/models/{id}?key=pk_…`` from the key's origin: the request every page view makes,
  the baseline of the ratio;
- ``POST /v1/beacon?key=pk_…`` with 1 event, and with ``--events`` (default 12: a view, poster
  and first-frame times, interactions, time in view: a page that was used) per beacon.

After each beacon case it waits until the sums have gone over the bus and are in the gateway's
sqlite (``analytics`` answers with every accepted view), and prints how long that took after
the load stopped: the write path is off the request path, and this shows it keeps up.

    .venv/bin/python bench/bench_beacon.py                 # ~40 s
    .venv/bin/python bench/bench_beacon.py --seconds 3 --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import msgspec
from bench_gateway import OID, running_gateway, served_model
from http_load import add_load_options, run_load

from foto3d.proto.analytics import ANALYTICS, AnalyticsQuery
from foto3d.proto.gateway import TOKENS_ISSUE, CredentialKind, IssueRequest

ORIGIN = "https://shop.example.com"
# what navigator.sendBeacon sends: a simple request, no preflight
BEACON_HEADERS = {"Origin": ORIGIN, "Content-Type": "text/plain;charset=UTF-8"}


def beacon_body(events: int) -> bytes:
    page = [
        {"kind": "view"},
        {"kind": "poster", "ms": 310},
        {"kind": "first_frame", "ms": 1450},
        {"kind": "time_in_view", "ms": 21000},
    ]
    gestures = [{"kind": "interaction", "action": a} for a in ("orbit", "zoom", "orbit", "fullscreen")]
    evs = [page[0], *(page[1:] + gestures * 16)[: events - 1]]
    return msgspec.json.encode({"object_id": OID, "device": "phone", "events": evs})


# -- the run ------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> int:
    rows: list[tuple[str, int, dict[str, Any], float | None]] = []
    # one key generates all the load: lift the beacon bucket too
    limits = {"beacon_rate": 1e9, "beacon_burst": 1_000_000}
    async with running_gateway("f3d-bench-beacon-", b"ply\n" + b"x" * 100_000, **limits) as (_, gw_url, bus):
        issued = await bus.call(
            TOKENS_ISSUE,
            IssueRequest(customer="bench", kind=CredentialKind.PUBLISHABLE, origins=[ORIGIN]),
        )
        model_url = f"{gw_url}/v1/models/{OID}?key={issued.token}"
        beacon_url = f"{gw_url}/v1/beacon?key={issued.token}"
        await served_model(model_url, {"Origin": ORIGIN})
        rows.append(
            ("GET /v1/models/{id} (pk)", 0, await run_load(model_url, args, headers={"Origin": ORIGIN}), None)
        )
        views = 0
        for n_events in (1, args.events):
            res = await run_load(
                beacon_url,
                args,
                method="POST",
                headers=BEACON_HEADERS,
                body=beacon_body(n_events),
                ok_status=202,
            )
            stopped = time.monotonic()
            views += res["accepted"]

            async def folded(want: int = views) -> bool:
                reply = await bus.call(ANALYTICS, AnalyticsQuery(customer="bench", days=1))
                return reply.total is not None and reply.total.views >= want

            while not await folded():
                if time.monotonic() - stopped > 120:
                    raise RuntimeError("the beacon sums did not reach sqlite within 2 minutes")
                await asyncio.sleep(0.05)
            rows.append((f"POST /v1/beacon, {n_events} event(s)", n_events, res, time.monotonic() - stopped))
    print(
        f"{args.clients} concurrent clients, {args.seconds:g} s each after {args.warmup:g} s warm-up, loopback"
    )
    print(
        f"{'case':<32} {'req/s':>8} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'vs lookup':>9} {'in sqlite after':>15}"
    )
    lookup = rows[0][2]["rps"]
    for name, n_events, res, lag in rows:
        events = f"{res['rps'] * n_events:,.0f}" if n_events else "-"
        ratio = f"{res['rps'] / lookup:.2f}x" if n_events and lookup else ""
        after = f"{lag:.1f} s" if lag is not None else ""
        print(
            f"{name:<32} {res['rps']:>8,.0f} {events:>9} {res['p50_ms']:>7.1f} {res['p99_ms']:>7.1f} "
            f"{res['errors']:>6} {ratio:>9} {after:>15}"
        )
    best = rows[-1][2]["rps"] * args.events
    print(f"beacon events one instance takes per second: {best:,.0f} (goal: 5,000)")
    return 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_load_options(p)
    p.add_argument("--events", type=int, default=12, help="events per beacon in the second case (2-64)")
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
