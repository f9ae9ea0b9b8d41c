"""`foto3d status`: every participant's last heartbeat: alive, late, lost or stopped; and how
full the data volume and the size-limited streams are."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from foto3d.cli.common import connect_cli, fail, run_async, settings_from, system_options
from foto3d.libs.config import ConfigError

ORDER = 10
_STATE_ORDER = {"lost": 0, "late": 1, "alive": 2, "stopped": 3}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status",
        parents=[system_options()],
        help="list every service, trainer, rig and job with its last heartbeat",
        description=(
            "List every participant that sends heartbeats (services, trainers, rigs, running jobs) "
            "with its state: alive (seen within 1.5 intervals), late (not yet past its grace), "
            "lost (silent past its grace, default 3 intervals) or stopped (said goodbye). "
            "Reads the HEARTBEATS stream directly, so it works without the notifier. Also shows the "
            "free space of the data folder's volume (when it is on this host) and how full each "
            "size-limited stream is, with a warning past the [disk] thresholds."
        ),
    )
    p.add_argument("--json", action="store_true", help="print JSON (one object with a 'participants' list)")
    p.add_argument(
        "--watch",
        nargs="?",
        const=2.0,
        type=float,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C",
    )
    p.add_argument("--kind", help="only this kind (service, trainer, rig, job, ...)")
    p.set_defaults(func=cmd_status)


def _fmt_age(age: float) -> str:
    if age < 60:
        return f"{age:.1f}s"
    if age < 3600:
        return f"{age / 60:.0f}m"
    if age < 86400:
        return f"{age / 3600:.1f}h"
    return f"{age / 86400:.1f}d"


def _progress(p: dict[str, Any]) -> str:
    pr = p.get("progress") or {}
    parts = []
    if p.get("job_id"):
        parts.append(str(p["job_id"]))
    if pr.get("stage"):
        parts.append(str(pr["stage"]))
    if pr.get("total"):
        parts.append(f"{100 * pr.get('step', 0) / pr['total']:.0f}%")
    if p.get("pending"):
        parts.append(f"{p['pending']} unsent")
    return " ".join(parts)


def render_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no participants have sent a heartbeat yet"
    head = ("STATE", "KIND", "ID", "HOST", "VERSION", "LAST SEEN", "JOB / PROGRESS")
    table = [head] + [
        (
            r["state"],
            r["kind"],
            r["id"],
            r["host"],
            r["version"],
            _fmt_age(r["age_s"]) + " ago",
            _progress(r),
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    )


async def storage_report(js: Any, settings: Any) -> dict[str, Any]:
    """Free space of the local data volume and fill of the size-limited streams, judged."""
    from foto3d.libs.bus.topology import STREAMS
    from foto3d.libs.diskspace import SETTINGS as DISK_SETTINGS
    from foto3d.libs.diskspace import disk_usage, judge, stream_fills

    cfg = DISK_SETTINGS.load(settings)
    disk = disk_usage(settings.data_dir) if settings.data_dir.exists() else None
    fills = await stream_fills(js, [s.name for s in STREAMS if s.max_bytes > 0])
    return {
        "disk": {"path": str(disk.path), "free_bytes": disk.free, "total_bytes": disk.total}
        if disk
        else None,
        "streams": [
            {"name": f.name, "bytes": f.bytes, "max_bytes": f.max_bytes, "fill_pct": f.fill_pct}
            for f in fills
        ],
        "warnings": [f.text for f in judge(cfg, disk, fills)],
    }


def render_storage(report: dict[str, Any]) -> str:
    parts = []
    disk = report["disk"]
    if disk:
        pct = 100 * disk["free_bytes"] / disk["total_bytes"] if disk["total_bytes"] else 0
        parts.append(f"data volume {disk['free_bytes'] / 2**20:.0f} MiB free ({pct:.0f}%)")
    for st in report["streams"]:
        if st["fill_pct"] is not None:
            parts.append(f"{st['name']} {st['fill_pct']:.0f}% of {st['max_bytes'] / 2**20:.0f} MiB")
    lines = ["storage: " + ", ".join(parts)] if parts else []
    lines += [f"WARNING: {w}" for w in report["warnings"]]
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    from foto3d.libs.heartbeat import current, read_heartbeats

    if args.watch is not None and args.watch <= 0:
        return fail("--watch needs a positive number of seconds")
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        return fail(str(exc))

    async def main() -> int:
        try:
            bus = await connect_cli(settings)
        except ConfigError as exc:
            return fail(str(exc))
        try:
            while True:
                try:
                    seen, malformed = await read_heartbeats(bus.js)
                except LookupError as exc:
                    return fail(str(exc))
                now = time.time()
                rows = [
                    s.as_dict(now) for s in current(seen, now) if not args.kind or s.beat.kind == args.kind
                ]
                rows.sort(key=lambda r: (_STATE_ORDER.get(r["state"], 9), r["kind"], r["id"]))
                storage = await storage_report(bus.js, settings)
                if args.json:
                    out = {"ts": now, "participants": rows, "malformed": malformed, "storage": storage}
                    print(json.dumps(out), flush=True)
                else:
                    if args.watch is not None and sys.stdout.isatty():
                        print("\033[H\033[2J", end="")
                    print(render_table(rows))
                    if malformed:
                        print(f"({malformed} unreadable heartbeat(s) ignored)")
                    if text := render_storage(storage):
                        print(text)
                    sys.stdout.flush()
                if args.watch is None:
                    return 0
                await asyncio.sleep(args.watch)
        finally:
            await bus.close()

    return run_async(main)
