"""`foto3d analytics CUSTOMER`: what the viewer's beacons say, per day, model, domain and device."""

from __future__ import annotations

import argparse

import msgspec

from foto3d.cli.common import GATEWAY_UNANSWERED, fail, run_on_bus, system_options
from foto3d.cli.output import print_json
from foto3d.libs.bus.connection import Bus
from foto3d.proto.analytics import ANALYTICS, MAX_DAYS, AnalyticsQuery, AnalyticsRow, Percentiles
from foto3d.proto.rules import readable

ORDER = 24

HEADER = (
    f"{'DAY':<10}  {'OBJECT':<32} {'DOMAIN':<24} {'DEVICE':<7} {'VIEWS':>6} "
    f"{'FIRST FRAME p50/p75/p95 ms (n)':>31} {'ORBIT':>6} {'ZOOM':>6} {'FULLSCR':>7} "
    f"{'AVG VIEW s':>10} {'ERRORS':>6}"
)


def _ms(v: int | None) -> str:
    return "-" if v is None else str(v)


def _pct(p: Percentiles) -> str:
    return f"{_ms(p.p50)}/{_ms(p.p75)}/{_ms(p.p95)} ({p.count})"


def _line(r: AnalyticsRow) -> str:
    avg = f"{r.time_in_view_ms / r.views / 1000:.1f}" if r.views else "-"
    return (
        f"{r.day or 'total':<10}  {r.object_id or '-':<32} {r.domain or '-':<24} {r.device or '-':<7} "
        f"{r.views:>6} {_pct(r.first_frame):>31} {r.orbit:>6} {r.zoom:>6} {r.fullscreen:>7} "
        f"{avg:>10} {r.errors:>6}"
    )


def cmd_analytics(args: argparse.Namespace) -> int:
    try:
        q = msgspec.convert(
            {"customer": args.customer, "object_id": args.model, "days": args.days}, AnalyticsQuery
        )
    except msgspec.ValidationError as exc:
        return fail(readable(exc))

    async def go(bus: Bus) -> int:
        reply = await bus.call(ANALYTICS, q, timeout=args.timeout)
        if args.json:
            print_json(reply)
            return 0
        if not reply.rows:
            print(f"no viewer beacons for {q.customer} in the last {q.days} day(s)")
            return 0
        print(HEADER)
        for r in reply.rows:
            print(_line(r))
        if reply.total is not None:
            print(_line(reply.total))
        return 0

    return run_on_bus(args, go, GATEWAY_UNANSWERED)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "analytics",
        parents=[system_options()],
        help="the viewer's real-user analytics for a customer (views, first frame, interactions)",
        description="Views, time to first frame (p50/p75/p95, from every visitor's device), interactions, "
        "time in view and errors, per UTC day, model, domain and device class, as the embedded viewer "
        "reported them through the token gateway. The last line totals every row; its percentiles are "
        "those of all the rows' measurements together.",
    )
    p.add_argument("customer", help="customer slug, e.g. acme")
    p.add_argument("--model", metavar="OBJECT_ID", help="only this model")
    p.add_argument(
        "--days", type=int, default=30, help=f"the last N UTC days, today included (1-{MAX_DAYS}; default 30)"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the gateway")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    p.set_defaults(func=cmd_analytics)
