"""`foto3d publish OBJECT_ID`: send an approved object to production, with a progress bar."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec

from foto3d.cli.commands.objects import _actor, catalog_call, run_catalog
from foto3d.cli.common import system_options
from foto3d.libs.bus.connection import Bus
from foto3d.proto.objects import PUBLISH, PublishProgress, publish_progress_subject

ORDER = 21
BAR = 30


def render(p: PublishProgress) -> str:
    share = p.done / p.total if p.total else 1.0
    overall = (p.files_done + (share if p.files_done < p.files_total else 0)) / max(1, p.files_total)
    filled = int(overall * BAR)
    return (
        f"\r[{'#' * filled}{'.' * (BAR - filled)}] {p.files_done}/{p.files_total} files"
        f"  {p.file[:40]:<40} {share * 100:5.1f}%"
    )


def cmd_publish(args: argparse.Namespace) -> int:
    show = not args.quiet

    async def go(bus: Bus) -> int:
        drew = False

        async def on_progress(msg: Any) -> None:
            nonlocal drew
            try:
                p = msgspec.json.decode(msg.data, type=PublishProgress)
            except msgspec.DecodeError:
                return
            sys.stderr.write(render(p))
            sys.stderr.flush()
            drew = True

        sub = (
            await bus.nc.subscribe(publish_progress_subject(args.object_id), cb=on_progress) if show else None
        )
        try:
            o = await catalog_call(
                bus, PUBLISH, {"object_id": args.object_id, "actor": args.actor}, args.timeout
            )
        finally:
            if sub is not None:
                await sub.unsubscribe()
            if drew:
                sys.stderr.write("\n")
        pub = o.published
        uploaded = pub.uploaded
        note = "nothing new to upload" if uploaded == 0 else f"{uploaded} of {len(pub.files)} files uploaded"
        print(f"{o.object_id} v{pub.version} is live ({note}):")
        print(f"  {o.live_url}")
        for f in pub.files:
            if args.verbose:
                print(f"  {f.kind:<13} {f.bytes:>12,}  {f.url}")
        return 0

    return run_catalog(args, go)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "publish",
        parents=[system_options()],
        help="send an approved object to production (S3 or the local store)",
        description="Upload the approved job's splat files, a viewer config and a thumbnail under "
        "models/<customer>/<object>/v<N>/ and record the live link. Publishing the same version "
        "again uploads nothing new. Only approved objects can be published.",
    )
    p.add_argument("object_id", help="the object to publish, e.g. acme-desk-lamp-001")
    p.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait for the upload (default 1800)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _actor(p)
    p.set_defaults(func=cmd_publish)
