"""`foto3d objects …`: the catalog from the command line (over the bus, like the dashboard)."""

from __future__ import annotations

import argparse
import base64
import csv
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from foto3d.cli.catalog_rebuild import add_rebuild
from foto3d.cli.common import (
    CATALOG_UNANSWERED,
    CommandError,
    add_actor_option,
    fail,
    parse_since,
    run_on_bus,
    system_options,
)
from foto3d.cli.job_results import file_name
from foto3d.cli.output import print_json, print_table, utc_time
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import ConfigError
from foto3d.proto import objects as catalog
from foto3d.proto.api import Api
from foto3d.proto.jobs import Priority, readable_decode_error
from foto3d.proto.objects import CSV_COLUMNS, LiveStatus, Stage

R = TypeVar("R")

ORDER = 20
CHECKLIST = ("training_quality", "alignment", "manual_adjustments")
MAX_IMAGE = 768 * 1024


async def catalog_call(bus: Bus, api: Api[Any, R], body: dict[str, Any], timeout: float = 10.0) -> R:
    """Call a catalog endpoint with ``body`` (checked against its request type first)."""
    try:
        request = msgspec.convert(body, api.request)
    except msgspec.ValidationError as exc:
        raise CommandError(f"bad request: {readable_decode_error(exc)}") from None
    try:
        return await bus.call(api, request, timeout=timeout)
    except TimeoutError:  # this call's own wait, which the message names
        raise CommandError(f"the catalog did not answer within {timeout:.0f} s") from None


def run_catalog(args: argparse.Namespace, fn: Callable[[Bus], Coroutine[Any, Any, int]]) -> int:
    """Run a catalog command (``run_on_bus`` with the catalog's words for silence)."""
    return run_on_bus(args, fn, CATALOG_UNANSWERED)


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------


def cmd_customer_add(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        row = await catalog_call(
            bus, catalog.CUSTOMER_ADD, {"slug": args.slug, "name": args.name or "", "actor": args.actor}
        )
        print(f"added customer {row.slug} ({row.name})")
        return 0

    return run_catalog(args, go)


def cmd_customers(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        rows = await catalog_call(bus, catalog.CUSTOMERS, {})
        if args.json:
            print_json(rows)
        else:
            print_table([[r.slug, r.name, str(r.objects), utc_time(r.created)] for r in rows],
                        ["customer", "name", "objects", "added"])  # fmt: skip
        return 0

    return run_catalog(args, go)


def cmd_register(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"customer": args.customer, "display_name": args.name, "actor": args.actor}
    if args.image:
        if args.image.startswith(("http://", "https://", "s3://")):
            body["reference_image"] = args.image
        else:
            path = Path(args.image)
            if not path.is_file():
                return fail(f"reference image {path} does not exist")
            if path.stat().st_size > MAX_IMAGE:
                return fail(
                    f"reference image {path} is larger than {MAX_IMAGE // 1024} KiB; pass a URL instead"
                )
            body["reference_image_b64"] = base64.b64encode(path.read_bytes()).decode()
            body["reference_image_name"] = path.name

    async def go(bus: Bus) -> int:
        row = await catalog_call(bus, catalog.REGISTER, body)
        print(row.object_id)
        return 0

    return run_catalog(args, go)


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("customer", "status", "stage"):
        if getattr(args, key, None):
            out[key] = getattr(args, key)
    if getattr(args, "search", None):
        out["q"] = args.search
    for key in ("since", "until"):
        value = getattr(args, key, None)
        if value:
            try:
                out[key] = parse_since(value)
            except ValueError as exc:
                raise ConfigError(f"--{key}: {exc}") from None
    return out


def cmd_list(args: argparse.Namespace) -> int:
    query = {**_filters(args), "page": args.page, "limit": args.limit}

    async def go(bus: Bus) -> int:
        res = await catalog_call(bus, catalog.LIST, query)
        if args.json:
            print_json(res)
            return 0
        rows = [
            [o.object_id, o.display_name[:40], o.customer, o.stage, o.status or "-",
             utc_time(o.created), o.live_url or ""]
            for o in res.items
        ]  # fmt: skip
        print_table(rows, ["object", "name", "customer", "stage", "status", "registered", "live link"])
        pages = max(1, -(-res.total // res.limit))
        print(f"\n{res.total} objects, page {res.page} of {pages}", file=sys.stderr)
        return 0

    return run_catalog(args, go)


def cmd_show(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        o = await catalog_call(bus, catalog.SHOW, {"object_id": args.object_id})
        if args.json:
            print_json(o)
            return 0
        for label, key in (("object", "object_id"), ("name", "display_name"), ("customer", "customer"),
                           ("stage", "stage"), ("status", "status"), ("dataset", "dataset"),
                           ("latest job", "job_id"), ("approved job", "approved_job_id"),
                           ("version", "published_version"), ("live link", "live_url")):  # fmt: skip
            value = getattr(o, key)
            print(f"{label:>13}: {value if value is not None else '-'}")
        print(f"{'registered':>13}: {utc_time(o.created)} by {o.created_by or '?'}")
        if o.jobs:
            print("\njobs (newest first; `foto3d job ID` for details):")
            for j in o.jobs:
                files = ", ".join(file_name(a.uri) for a in j.artifacts if a.kind == "splat")
                print(f"  {j.job_id:<22} {j.state:<10} {utc_time(j.ts)}  {files}")
        for p in o.publications:
            print(f"\npublished v{p.version} ({utc_time(p.ts)}, {p.actor}):")
            for f in p.files:
                print(f"  {f.kind:<13} {f.bytes:>12,}  {f.url}")
        return 0

    return run_catalog(args, go)


def cmd_timeline(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        events = await catalog_call(bus, catalog.TIMELINE, {"object_id": args.object_id})
        if args.json:
            print_json(events)
            return 0
        print_table([[utc_time(e.ts), e.kind, e.actor or "-", e.summary] for e in events],
                    ["when (utc)", "what", "who", "details"])  # fmt: skip
        return 0

    return run_catalog(args, go)


def cmd_captured(args: argparse.Namespace) -> int:
    body = {"object_id": args.object_id, "dataset": args.dataset, "photos": args.photos, "rig": args.rig,
            "actor": args.actor}  # fmt: skip

    async def go(bus: Bus) -> int:
        o = await catalog_call(bus, catalog.CAPTURE, body)
        print(f"{o.object_id}: {o.stage}")
        return 0

    return run_catalog(args, go)


def cmd_approve(args: argparse.Namespace) -> int:
    checked = set(CHECKLIST) if args.all else set(args.check or [])
    body = {"object_id": args.object_id, "decision": "approved", "comment": args.comment or "",
            "checklist": {k: k in checked for k in CHECKLIST}, "actor": args.actor}  # fmt: skip

    async def go(bus: Bus) -> int:
        o = await catalog_call(bus, catalog.REVIEW, body)
        print(f"{o.object_id}: approved job {o.approved_job_id}; publish with `foto3d publish {o.object_id}`")
        return 0

    return run_catalog(args, go)


def cmd_reject(args: argparse.Namespace) -> int:
    body = {"object_id": args.object_id, "decision": "rejected", "comment": args.reason, "actor": args.actor}

    async def go(bus: Bus) -> int:
        o = await catalog_call(bus, catalog.REVIEW, body)
        print(f"{o.object_id}: rejected; train it again with `foto3d objects resubmit {o.object_id}`")
        return 0

    return run_catalog(args, go)


def cmd_status(args: argparse.Namespace) -> int:
    body = {
        "object_id": args.object_id,
        "status": args.status,
        "reason": args.reason or "",
        "actor": args.actor,
    }

    async def go(bus: Bus) -> int:
        o = await catalog_call(bus, catalog.STATUS, body)
        print(f"{o.object_id}: status {o.status} (stage {o.stage})")
        return 0

    return run_catalog(args, go)


def cmd_rollback(args: argparse.Namespace) -> int:
    body = {"object_id": args.object_id, "version": args.version, "actor": args.actor}

    async def go(bus: Bus) -> int:
        o = await catalog_call(bus, catalog.ROLLBACK, body)
        print(f"{o.object_id}: v{o.published_version} is live ({o.live_url})")
        return 0

    return run_catalog(args, go)


def cmd_resubmit(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    for name in ("steps", "reduce_keep", "reduce_iterations", "sh_degree"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.no_reduce:
        options["reduce"] = False
    body: dict[str, Any] = {"object_id": args.object_id, "actor": args.actor, "options": options}
    if args.priority is not None:
        body["priority"] = args.priority

    async def go(bus: Bus) -> int:
        o = await catalog_call(bus, catalog.RESUBMIT, body, timeout=15)
        options = msgspec.to_builtins(o.options) if o.options is not None else {}
        opts = ", ".join(f"{k} {v}" for k, v in sorted(options.items()) if k != "formats")
        print(
            f"{o.object_id}: submitted again as job {o.job_id} ({o.priority or '?'}{', ' + opts if opts else ''})"
        )
        return 0

    return run_catalog(args, go)


def cmd_export(args: argparse.Namespace) -> int:
    filters = _filters(args)

    try:
        out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    except OSError as exc:
        return fail(f"cannot write {args.output}: {exc.strerror}")

    async def go(bus: Bus) -> int:
        try:
            w = csv.writer(out)
            w.writerow(CSV_COLUMNS)
            page, n = 1, 0
            while True:
                res = await catalog_call(
                    bus, catalog.LIST, {**filters, "page": page, "limit": 1000}, timeout=30
                )
                for o in res.items:
                    row = msgspec.structs.asdict(o)
                    row["created"] = datetime.fromtimestamp(o.created, UTC).isoformat(timespec="seconds")
                    w.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
                n += len(res.items)
                if len(res.items) < 1000:
                    break
                page += 1
        finally:
            if out is not sys.stdout:
                out.close()
        if args.output:
            print(f"wrote {n} objects to {args.output}", file=sys.stderr)
        return 0

    return run_catalog(args, go)


def cmd_board(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        b = await catalog_call(bus, catalog.BOARD, {})
        if args.json:
            print_json(b)
            return 0
        for s in Stage:
            print(f"{s.value:>10}: {b.counts.get(s.value, 0)}")
        if b.stuck:
            print("\nstuck:")
            print_table([[x.object_id, x.stage, f"{x.for_s / 3600:.1f} h"] for x in b.stuck],
                        ["object", "stage", "for"])  # fmt: skip
        return 0

    return run_catalog(args, go)


# ---------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------


def _actor(p: argparse.ArgumentParser) -> None:
    add_actor_option(p)


def _filter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--customer", help="only this customer's objects")
    p.add_argument(
        "--status", choices=[s.value for s in LiveStatus] + ["none"], help="live status ('none' = not live)"
    )
    p.add_argument("--stage", choices=[s.value for s in Stage], help="pipeline stage")
    p.add_argument("--search", metavar="TEXT", help="part of the object id or display name")
    p.add_argument("--since", metavar="WHEN", help="registered at or after (e.g. 7d, 2026-11-01)")
    p.add_argument("--until", metavar="WHEN", help="registered before (e.g. 1d, 2026-11-20)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser(
        "objects",
        help="the catalog: customers, objects, timelines, approvals, statuses",
        description="Work with the catalog through the running system (the catalog service must be up).",
    )
    osub = top.add_subparsers(dest="objects_command", metavar="ACTION", required=True)
    common = [system_options()]

    p = osub.add_parser("customer-add", parents=common, help="add a customer (needed before its objects)")
    p.add_argument(
        "slug", help="customer id: 1-20 lowercase letters and digits, the first part of object ids"
    )
    p.add_argument("--name", help="the customer's full name")
    _actor(p)
    p.set_defaults(func=cmd_customer_add)

    p = osub.add_parser("customers", parents=common, help="list customers")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_customers)

    p = osub.add_parser(
        "register",
        parents=common,
        help="onboard an object; prints its new id",
        description="Register an object for a customer. The catalog assigns the id "
        "<customer>-<name slug>-<NNN>; a second object with the same name gets the next number.",
    )
    p.add_argument("--customer", required=True, help="customer id (see `foto3d objects customers`)")
    p.add_argument("--name", required=True, help="display name, e.g. 'Desk lamp'")
    p.add_argument("--image", help="reference image: a local PNG/JPEG/WebP up to 768 KiB, or a URL")
    _actor(p)
    p.set_defaults(func=cmd_register)

    p = osub.add_parser("list", parents=common, help="list and filter objects")
    _filter_options(p)
    p.add_argument("--page", type=int, default=1, help="page number (default 1)")
    p.add_argument("--limit", type=int, default=50, help="objects per page (default 50, at most 1000)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = osub.add_parser("show", parents=common, help="one object: stage, status, jobs, published files")
    p.add_argument("object_id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_show)

    p = osub.add_parser(
        "timeline", parents=common, help="everything that happened to an object, oldest first"
    )
    p.add_argument("object_id")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_timeline)

    p = osub.add_parser("captured", parents=common, help="record that an object was photographed")
    p.add_argument("object_id")
    p.add_argument("--dataset", required=True, help="where the photos are (path or URI)")
    p.add_argument("--photos", type=int, default=0, help="number of photos")
    p.add_argument("--rig", default="", help="rig that took them")
    _actor(p)
    p.set_defaults(func=cmd_captured)

    p = osub.add_parser(
        "approve",
        parents=common,
        help="approve the latest trained model (needs the whole checklist)",
        description="Approve the object's latest trained job. Every checklist item must be confirmed: "
        + ", ".join(CHECKLIST)
        + ".",
    )
    p.add_argument("object_id")
    p.add_argument("--check", action="append", choices=CHECKLIST, help="confirm one checklist item (repeat)")
    p.add_argument("--all", action="store_true", help="confirm every checklist item")
    p.add_argument("--comment", help="reviewer's comment")
    _actor(p)
    p.set_defaults(func=cmd_approve)

    p = osub.add_parser(
        "reject", parents=common, help="reject the trained model back to training, with a reason"
    )
    p.add_argument("object_id")
    p.add_argument("--reason", required=True, help="what is wrong (kept in the timeline)")
    _actor(p)
    p.set_defaults(func=cmd_reject)

    p = osub.add_parser(
        "status",
        parents=common,
        help="set a live model's status (disabled stops it at the token gateway at once)",
    )
    p.add_argument("object_id")
    p.add_argument("status", choices=[s.value for s in LiveStatus])
    p.add_argument("--reason", help="why (e.g. subscription ended)")
    _actor(p)
    p.set_defaults(func=cmd_status)

    p = osub.add_parser(
        "rollback",
        parents=common,
        help="make an earlier published version live again (the gateway serves it at once)",
    )
    p.add_argument("object_id")
    p.add_argument("version", type=int, help="a version listed by `foto3d objects show ID`")
    _actor(p)
    p.set_defaults(func=cmd_rollback)

    p = osub.add_parser(
        "resubmit",
        parents=common,
        help="send a rejected or failed object's dataset to training again",
        description="Train a rejected or failed object's dataset again with its last job's priority "
        "and options; each option given here overrides that one.",
    )
    p.add_argument("object_id")
    p.add_argument("--priority", choices=[x.value for x in Priority], help="default: the last job's")
    p.add_argument("--steps", type=int, metavar="N", help="training iterations (default: the last job's)")
    p.add_argument("--reduce-keep", type=float, metavar="F", help="fraction of gaussians kept")
    p.add_argument(
        "--reduce-iterations",
        type=int,
        metavar="N",
        help="prune + fine-tune rounds: accepted but not done yet (the trainer only prunes; docs/trainer.md)",
    )
    p.add_argument("--no-reduce", action="store_true", help="skip splat reduction")
    p.add_argument("--sh-degree", type=int, metavar="N", help="spherical-harmonics degree (0..3)")
    _actor(p)
    p.set_defaults(func=cmd_resubmit)

    p = osub.add_parser("export", parents=common, help="export objects as CSV")
    _filter_options(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(func=cmd_export)

    add_rebuild(osub, common)

    p = osub.add_parser("board", parents=common, help="objects per pipeline stage and the stuck ones")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_board)

    from foto3d.cli.commands import notes  # its commands reuse this module's helpers

    notes.add_actions(osub, common)
