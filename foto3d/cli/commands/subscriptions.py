"""`foto3d subscriptions …`: customers' subscriptions as the catalog holds them (a CRM sets them
over the bus with its `crm` key; staff may set one by hand with the same rules)."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from foto3d.cli.commands.webhooks import run_catalog, when
from foto3d.cli.common import add_actor_option, fail, system_options
from foto3d.cli.output import print_json
from foto3d.libs.bus.connection import Bus
from foto3d.proto.subscriptions import (
    SUBSCRIPTION_LIST,
    SUBSCRIPTION_SET,
    Requested,
    SubscriptionQuery,
    SubscriptionSet,
    SubscriptionView,
)

ORDER = 26


def parse_day(text: str) -> float:
    """``YYYY-MM-DD`` (midnight UTC) or ``YYYY-MM-DDTHH:MM`` (UTC)."""
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)")


def describe(s: SubscriptionView) -> str:
    scope = s.object_id or "all models"
    return (
        f"{s.subscription_id:<16} {s.customer:<12} {s.state.value:<9} {when(s.start)[:16]} → {when(s.end)[:16]}  "
        f"{scope}  rev {s.revision}"
    )


def cmd_list(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        subs = await bus.call(SUBSCRIPTION_LIST, SubscriptionQuery(customer=args.customer or ""))
        if args.json:
            print_json(subs)
            return 0
        for s in subs:
            print(describe(s))
        if not subs:
            print("no subscriptions")
        return 0

    return run_catalog(args, go)


def cmd_set(args: argparse.Namespace) -> int:
    try:
        start, end = parse_day(args.start), parse_day(args.end)
    except ValueError as exc:
        return fail(str(exc))
    req = SubscriptionSet(
        subscription_id=args.subscription_id,
        customer=args.customer,
        start=start,
        end=end,
        # By hand: the time in milliseconds is a revision newer than any earlier one.
        revision=args.revision or int(time.time() * 1000),
        state=Requested.CANCELLED if args.cancel else Requested.ACTIVE,
        object_id=args.model or "",
        actor=args.actor,
    )

    async def go(bus: Bus) -> int:
        reply = await bus.call(SUBSCRIPTION_SET, req)
        if args.json:
            print_json(reply)
            return 0
        print(f"{reply.outcome.value}: {describe(reply.subscription)}")
        return 0

    return run_catalog(args, go)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser(
        "subscriptions",
        help="customers' subscriptions: at the end their models are disabled by themselves",
        description="Subscriptions end by themselves: the catalog disables the models they cover and "
        "mails staff before and after. A CRM sets them over the bus; see docs/catalog.md.",
    )
    ssub = top.add_subparsers(dest="subscriptions_command", metavar="ACTION", required=True)

    p = ssub.add_parser("list", parents=[system_options()], help="subscriptions and their state")
    p.add_argument("--customer", help="only this customer's")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    p.set_defaults(func=cmd_list)

    p = ssub.add_parser("set", parents=[system_options()], help="create or change one (as a CRM would)")
    p.add_argument("subscription_id", help="the contract's id, e.g. crm-1234")
    p.add_argument("customer", help="customer slug")
    p.add_argument("--start", required=True, metavar="DAY", help="YYYY-MM-DD[THH:MM] UTC")
    p.add_argument("--end", required=True, metavar="DAY", help="YYYY-MM-DD[THH:MM] UTC")
    p.add_argument("--model", metavar="OBJECT_ID", help="one model only (default: all the customer's)")
    p.add_argument("--cancel", action="store_true", help="end it now")
    p.add_argument("--revision", type=int, help="default: now in milliseconds (newer than any before)")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    add_actor_option(p, "recorded as who changed it")
    p.set_defaults(func=cmd_set)
