"""`foto3d portal invite CUSTOMER EMAIL`: invite a person of a customer to the customer portal."""

from __future__ import annotations

import argparse

from foto3d.cli.common import GATEWAY_UNANSWERED, add_actor_option, run_on_bus, system_options
from foto3d.cli.output import print_json, utc_time
from foto3d.libs.bus.connection import Bus
from foto3d.proto.gateway import PORTAL_INVITE, PORTAL_INVITE_HOURS, PortalInviteRequest

ORDER = 25


def cmd_invite(args: argparse.Namespace) -> int:
    async def go(bus: Bus) -> int:
        req = PortalInviteRequest(customer=args.customer, email=args.email, actor=args.actor)
        reply = await bus.call(PORTAL_INVITE, req, timeout=args.timeout)
        if args.json:
            print_json(reply)
            return 0
        until = utc_time(reply.expires_at) + " UTC"
        how = "mailed" if reply.mailed else "NOT mailed (the bus refused the mail; invite again)"
        print(
            f"invited {reply.account} to the portal of {reply.customer}: link {how}, works once until {until}"
        )
        return 0 if reply.mailed else 1

    return run_on_bus(args, go, GATEWAY_UNANSWERED)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser(
        "portal",
        help="the customer portal: invite a customer's people",
        description="Customers sign in to the portal on the token gateway's listener (/portal/) to see "
        "their models, issue and revoke their viewer keys and read their analytics. Accounts are made "
        "by invitation only.",
    )
    psub = top.add_subparsers(dest="portal_command", metavar="ACTION", required=True)
    p = psub.add_parser(
        "invite",
        parents=[system_options()],
        help="mail a one-time link where the person chooses a password",
        description=f"Make (or find) the account named by EMAIL for CUSTOMER and mail it a link, usable "
        f"once within {PORTAL_INVITE_HOURS:.0f} hours, where the person chooses a password (and may then "
        "turn on one-time codes). Inviting again sends a new link and voids the old one (a password "
        "reset). The mail goes out through the notifier.",
    )
    p.add_argument("customer", help="customer slug, e.g. acme")
    p.add_argument("email", help="the person's mail address; it is also the account's name")
    add_actor_option(p, "recorded as the inviter")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the gateway")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    p.set_defaults(func=cmd_invite)
