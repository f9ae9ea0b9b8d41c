"""`foto3d tokens …`: customers' credentials (issue, list, revoke) and usage, via the token gateway."""

from __future__ import annotations

import argparse

from foto3d.cli.common import GATEWAY_UNANSWERED, add_actor_option, run_on_bus, system_options
from foto3d.cli.output import print_json, utc_time
from foto3d.libs.bus.connection import Bus
from foto3d.proto.gateway import (
    TOKENS_ISSUE,
    TOKENS_LIST,
    TOKENS_REVOKE,
    USAGE,
    CredentialInfo,
    CredentialKind,
    IssueRequest,
    ListRequest,
    RevokeRequest,
    UsageQuery,
)

ORDER = 24


def _describe(c: CredentialInfo) -> str:
    state = "revoked" if c.revoked_at else "active"
    scope = ", ".join(c.models) if c.models else "all models"
    origins = f"  origins: {', '.join(c.origins)}" if c.origins else ""
    return (
        f"{c.credential_id}  {c.customer:<12} {c.kind.value:<11} {c.prefix}…  {state:<7} "
        f"expires {utc_time(c.expires_at, missing='never')}  {scope}{origins}  {c.label}".rstrip()
    )


def cmd_issue(args: argparse.Namespace) -> int:
    kind = CredentialKind.PUBLISHABLE if args.publishable else CredentialKind.SECRET
    if args.never_expires:
        days: float | None = None
    else:
        days = args.days
    req = IssueRequest(
        customer=args.customer,
        kind=kind,
        label=args.label,
        models=args.model or [],
        origins=args.origin or [],
        expires_in_days=days,
        actor=args.actor,
    )

    async def go(bus: Bus) -> int:
        reply = await bus.call(TOKENS_ISSUE, req, timeout=args.timeout)
        if args.json:
            print_json(reply)
            return 0
        print(_describe(reply.credential))
        print(f"\n  {reply.token}\n")
        print("Copy it now: it is shown only once and is stored only as a hash.")
        return 0

    return run_on_bus(args, go, GATEWAY_UNANSWERED)


def cmd_list(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        req = ListRequest(customer=args.customer, include_revoked=args.all)
        reply = await bus.call(TOKENS_LIST, req, timeout=args.timeout)
        if args.json:
            print_json(reply)
            return 0
        for c in reply.credentials:
            print(_describe(c))
        if not reply.credentials:
            print("no credentials")
        return 0

    return run_on_bus(args, go, GATEWAY_UNANSWERED)


def cmd_revoke(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        req = RevokeRequest(credential_id=args.credential_id, reason=args.reason, actor=args.actor)
        reply = await bus.call(TOKENS_REVOKE, req, timeout=args.timeout)
        print(
            f"revoked {reply.credential.credential_id} ({reply.credential.customer}); "
            "its links stop working at once"
        )
        return 0

    return run_on_bus(args, go, GATEWAY_UNANSWERED)


def cmd_usage(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        q = UsageQuery(customer=args.customer, object_id=args.object, since=args.since, until=args.until)
        reply = await bus.call(USAGE, q, timeout=args.timeout)
        if args.json:
            print_json(reply)
            return 0
        print(f"{'DAY':<10}  {'CUSTOMER':<12} {'OBJECT':<40} {'REQUESTS':>9} {'REFUSED':>8} {'BYTES':>14}")
        for r in reply.rows:
            print(
                f"{r.day:<10}  {r.customer:<12} {r.object_id or '-':<40} {r.requests:>9} {r.denied:>8} {r.bytes:>14,}"
            )
        return 0

    return run_on_bus(args, go, GATEWAY_UNANSWERED)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser(
        "tokens",
        help="customers' API tokens and viewer keys; usage per day",
        description="Issue, list and revoke customers' credentials through the running token gateway. "
        "Secret tokens (sk_…) are for a customer's servers (Authorization: Bearer); publishable keys "
        "(pk_…) may sit in a web page and work only from their allowed origins. A token is shown once.",
    )
    tsub = top.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the gateway")
        p.add_argument("--json", action="store_true", help="print the reply as JSON")

    p = tsub.add_parser("issue", parents=[system_options()], help="issue a credential (shown once)")
    p.add_argument("customer", help="customer slug, e.g. acme")
    p.add_argument(
        "--publishable", action="store_true", help="a publishable viewer key (pk_…) instead of a secret token"
    )
    p.add_argument(
        "--origin", action="append", metavar="URL", help="allowed origin of a publishable key (repeat)"
    )
    p.add_argument(
        "--model", action="append", metavar="OBJECT_ID", help="only this model (repeat; default all)"
    )
    p.add_argument("--label", default="", help="what it is for, shown in lists")
    p.add_argument("--days", type=float, default=90.0, help="days until it expires (default 90)")
    p.add_argument("--never-expires", action="store_true", help="no expiry (secret tokens only)")
    add_actor_option(p, "recorded as the issuer")
    common(p)
    p.set_defaults(func=cmd_issue)

    p = tsub.add_parser("list", parents=[system_options()], help="list credentials (never the tokens)")
    p.add_argument("--customer", help="only this customer's")
    p.add_argument("--all", action="store_true", help="include revoked ones")
    common(p)
    p.set_defaults(func=cmd_list)

    p = tsub.add_parser("revoke", parents=[system_options()], help="revoke a credential at once")
    p.add_argument("credential_id", help="the 16-hex id shown by `tokens list`")
    p.add_argument("--reason", default="", help="why, kept with the revocation")
    add_actor_option(p, "recorded as the revoker")
    common(p)
    p.set_defaults(func=cmd_revoke)

    p = tsub.add_parser(
        "usage", parents=[system_options()], help="requests and bytes per customer, object, day"
    )
    p.add_argument("--customer", help="only this customer's usage")
    p.add_argument("--object", metavar="OBJECT_ID", help="only this object's usage")
    p.add_argument("--since", metavar="YYYY-MM-DD", help="from this UTC day on")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="up to and including this UTC day")
    common(p)
    p.set_defaults(func=cmd_usage)
