"""`foto3d webhooks …`: customers' webhook endpoints and their delivery log, via the catalog."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from foto3d.cli.common import CATALOG_UNANSWERED, CommandError, add_actor_option, run_on_bus, system_options
from foto3d.cli.output import print_json, utc_time
from foto3d.libs.bus.connection import Bus
from foto3d.proto.webhooks import (
    WEBHOOK_ADD,
    WEBHOOK_DELIVERIES,
    WEBHOOK_LIST,
    WEBHOOK_REMOVE,
    CustomerRef,
    EndpointAdd,
    EndpointRef,
)

ORDER = 25


def when(ts: float | None) -> str:
    return utc_time(ts, seconds=True, missing="-")


def run_catalog(args: argparse.Namespace, fn: Callable[[Bus], Coroutine[Any, Any, int]]) -> int:
    """Run a catalog command (``run_on_bus`` with these commands' words for silence)."""
    return run_on_bus(args, fn, CATALOG_UNANSWERED)


def cmd_add(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        try:
            body = msgspec.convert(
                {"customer": args.customer, "url": args.url, "actor": args.actor}, EndpointAdd
            )
        except msgspec.ValidationError as exc:
            raise CommandError(f"bad request: {exc}") from None
        ep = await bus.call(WEBHOOK_ADD, body)
        if args.json:
            print_json(ep)
            return 0
        print(f"{ep.endpoint_id}  {ep.customer}  {ep.url}")
        print(f"\n  signing secret: {ep.secret}\n")
        print("Give it to the customer now: it is shown only once (docs/catalog.md says how to check it).")
        return 0

    return run_catalog(args, go)


def cmd_list(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        eps = await bus.call(WEBHOOK_LIST, CustomerRef(customer=args.customer or ""))
        if args.json:
            print_json(eps)
            return 0
        for ep in eps:
            print(
                f"{ep.endpoint_id}  {ep.customer:<12} {ep.url}  added {when(ep.created)} by {ep.created_by or '?'}"
            )
        if not eps:
            print("no webhook endpoints")
        return 0

    return run_catalog(args, go)


def cmd_remove(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        ep = await bus.call(WEBHOOK_REMOVE, EndpointRef(endpoint_id=args.endpoint_id, actor=args.actor))
        print(f"removed {ep.endpoint_id} ({ep.customer}, {ep.url}); its waiting deliveries are dropped")
        return 0

    return run_catalog(args, go)


def cmd_deliveries(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        rows = await bus.call(WEBHOOK_DELIVERIES, CustomerRef(customer=args.customer or "", limit=args.limit))
        if args.json:
            print_json(rows)
            return 0
        for d in rows:
            last = f"HTTP {d.last_status}" if d.last_status else (d.last_error or "-")
            print(
                f"{when(d.created)}  {d.delivery_id}  {d.customer:<10} {d.type.value:<20} {d.state:<9} "
                f"tries {d.attempts:<3} last: {last[:60]}"
            )
        if not rows:
            print("no deliveries")
        return 0

    return run_catalog(args, go)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser(
        "webhooks",
        help="customers' webhook endpoints and the delivery log",
        description="Signed webhooks to customers' servers (model.published, model.disabled, model.updated, "
        "subscription.ending), retried until accepted. See docs/catalog.md.",
    )
    wsub = top.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print the reply as JSON")

    p = wsub.add_parser("add", parents=[system_options()], help="add an endpoint (its secret is shown once)")
    p.add_argument("customer", help="customer slug, e.g. acme")
    p.add_argument("url", help="https://… address that receives the POSTs")
    add_actor_option(p, "recorded as who added it")
    common(p)
    p.set_defaults(func=cmd_add)

    p = wsub.add_parser("list", parents=[system_options()], help="endpoints in use")
    p.add_argument("--customer", help="only this customer's")
    common(p)
    p.set_defaults(func=cmd_list)

    p = wsub.add_parser("remove", parents=[system_options()], help="stop sending to an endpoint")
    p.add_argument("endpoint_id", help="we_… as shown by `webhooks list`")
    add_actor_option(p, "recorded as who removed it")
    common(p)
    p.set_defaults(func=cmd_remove)

    p = wsub.add_parser("deliveries", parents=[system_options()], help="the delivery log, newest first")
    p.add_argument("--customer", help="only this customer's")
    p.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    common(p)
    p.set_defaults(func=cmd_deliveries)
