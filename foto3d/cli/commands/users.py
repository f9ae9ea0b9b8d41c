"""`foto3d users …`: staff accounts for the dashboard.

A change goes over the bus when one answers: published on ``AUTH_ACCOUNTS``, every dashboard
instance at every site applies it (``libs/auth/shared_users.py``), and the command waits until this
host's dashboard, if one runs here, has. With no bus reachable (a lone host before its first
`foto3d up`) it writes the data folder's file directly, and says so: a new account is published
by the next dashboard that starts on this folder; other changes stay on this host.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from foto3d.cli.common import (
    connect_cli,
    default_actor,
    fail,
    login_name,
    run_async,
    settings_from,
    system_options,
)
from foto3d.libs.auth import User, UserError, UserStore
from foto3d.libs.config import ConfigError

T = TypeVar("T")

ORDER = 60


def _store(args: argparse.Namespace) -> UserStore:
    return UserStore.in_data_dir(settings_from(args).data_dir)


def _change(args: argparse.Namespace, action: Callable[[UserStore], Awaitable[T]]) -> T:
    """Run ``action`` on the shared accounts when the bus answers, else on this folder's file."""
    from foto3d.libs.auth.shared_users import SharedUsers

    settings = settings_from(args)
    local = UserStore.in_data_dir(settings.data_dir)

    async def run() -> T:
        try:
            bus = await connect_cli(settings)
        except ConfigError as exc:
            print(
                f"no bus reachable ({str(exc).splitlines()[0]}): changing this data folder's accounts only",
                file=sys.stderr,
            )
            return await action(local)
        try:
            return await action(SharedUsers(local.path, bus, fold=False))
        finally:
            await bus.close()

    return asyncio.run(run())


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """The new password and whether we generated it (then it is printed once)."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if args.generate or not sys.stdin.isatty():
        return secrets.token_urlsafe(12), True
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Again: "):
        raise UserError("the two passwords differ")
    return first, False


def cmd_add(args: argparse.Namespace) -> int:
    try:
        password, generated = _password(args)

        async def add(store: UserStore) -> User:
            user = await store.add(args.name.lower(), password, args.display_name or "", args.admin)
            if args.email:
                await store.set_email(user.name, args.email)
            return user

        user = _change(args, add)
    except UserError as exc:
        return fail(str(exc))
    print(f"added user {user.name}" + (f" with password {password} (shown once)" if generated else ""))
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    try:
        password, generated = _password(args)
        _change(args, lambda store: store.set_password(args.name.lower(), password))
    except UserError as exc:
        return fail(str(exc))
    print(
        f"changed the password of {args.name}"
        + (f" to {password} (shown once)" if generated else "")
        + "; its sessions are signed out"
    )
    return 0


def cmd_email(args: argparse.Namespace) -> int:
    try:
        _change(args, lambda store: store.set_email(args.name.lower(), args.address))
    except UserError as exc:
        return fail(str(exc))
    print(f"mail about {args.name}'s account goes to {args.address}" if args.address else "no mail address")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    try:
        _change(args, lambda store: store.set_disabled(args.name.lower(), not args.enable))
    except UserError as exc:
        return fail(str(exc))
    print(f"{'enabled' if args.enable else 'disabled'} {args.name}")
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    """Lift the sign-in limits of an account (or an address) on every dashboard instance."""
    from foto3d.proto import subjects
    from foto3d.proto.auth import SignInUnlocked

    if not args.name and not args.address:
        return fail("name an account, or give --address")
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        return fail(str(exc))
    # Recorded as the person's staff account, as every CLI action is (default_actor's one rule).
    by = default_actor(settings.data_dir)
    event = SignInUnlocked(
        account=(args.name or "").lower(), address=args.address or "", by=by, at=time.time()
    )

    async def run() -> int:
        try:
            bus = await connect_cli(settings)
        except ConfigError as exc:
            return fail(str(exc))
        try:
            await bus.publish(subjects.auth_signin("cli"), event, deadline=10.0)
        finally:
            await bus.close()
        print("unlocked " + " and ".join(w for w in (args.name, args.address) if w))
        return 0

    return run_async(run)


def cmd_sessions(args: argparse.Namespace) -> int:
    """List sign-in sessions; end one (--end ID) or all of a person's (--end-all)."""
    store = _store(args)
    name = args.name.lower() if args.name else None
    if args.end or args.end_all:
        if name is None:
            return fail("name the person whose sessions end")
        who = name
        n = _change(
            args,
            lambda s: (
                s.end_stored_sessions(who, stored_id=args.end) if args.end else s.end_stored_sessions(who)
            ),
        )
        if args.end and n == 0:
            return fail(f"{name} has no session {args.end}")
        print(f"ended {n} session(s) of {name}")
        return 0
    for s in asyncio.run(store.sessions(name)):
        started = datetime.fromtimestamp(s.created, UTC).strftime("%Y-%m-%d %H:%M")
        seen = datetime.fromtimestamp(s.seen, UTC).strftime("%Y-%m-%d %H:%M")
        print(
            f"{s.id}  {s.user:<20} since {started}  seen {seen}  {s.address:<16} {s.user_agent[:60]}".rstrip()
        )
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    login = args.login or login_name()
    try:
        _change(args, lambda store: store.link_login(args.name.lower(), login))
    except UserError as exc:
        return fail(str(exc))
    print(f"the login {login} now acts as {args.name} in the CLI (its actions are recorded as {args.name})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    logins: dict[str, list[str]] = {}
    for login, name in asyncio.run(store.logins()).items():
        logins.setdefault(name, []).append(login)
    for user, disabled, created in asyncio.run(store.list()):
        flags = ", ".join(f for f, on in (("admin", user.admin), ("disabled", disabled)) if on)
        if user.name in logins:
            flags = ", ".join(filter(None, [flags, "logins " + " ".join(logins[user.name])]))
        when = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%d")
        print(f"{user.name:<24} {user.display_name:<30} {when}  {flags}".rstrip())
    return 0


def _password_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of stdin"
    )
    g.add_argument("--generate", action="store_true", help="generate a random password and print it once")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser(
        "users",
        help="staff accounts for the dashboard sign-in",
        description="Manage the people who can sign in to the dashboard. A change is published "
        "to every dashboard instance when the bus answers; with none reachable it is made in the "
        "data folder only (a new account is shared when a dashboard next starts there). Passwords "
        "are stored as scrypt hashes.",
    )
    usub = top.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    p = usub.add_parser("add", parents=[system_options()], help="add a person (asks for a password)")
    p.add_argument("name", help="sign-in name: lowercase letters, digits, '.', '_', '@', '-'")
    p.add_argument("--display-name", help="full name shown in the dashboard")
    p.add_argument("--admin", action="store_true", help="mark as administrator")
    p.add_argument("--email", help="where mails about the account go (a sign-in from a new address)")
    _password_options(p)
    p.set_defaults(func=cmd_add)
    p = usub.add_parser("passwd", parents=[system_options()], help="set a new password")
    p.add_argument("name")
    _password_options(p)
    p.set_defaults(func=cmd_passwd)
    p = usub.add_parser(
        "email", parents=[system_options()], help="set where mails about a person's account go"
    )
    p.add_argument("name")
    p.add_argument("address", help="a mail address ('' for none)")
    p.set_defaults(func=cmd_email)
    p = usub.add_parser("disable", parents=[system_options()], help="stop a person from signing in")
    p.add_argument("name")
    p.add_argument("--enable", action="store_true", help="allow signing in again")
    p.set_defaults(func=cmd_disable)
    p = usub.add_parser(
        "unlock",
        parents=[system_options()],
        help="lift the sign-in wait of an account after failed passwords (on every instance)",
    )
    p.add_argument("name", nargs="?", help="the account")
    p.add_argument("--address", help="also (or only) lift the wait of this client address")
    p.set_defaults(func=cmd_unlock)
    p = usub.add_parser(
        "sessions",
        parents=[system_options()],
        help="list dashboard sessions, or end them (sign a person out everywhere)",
    )
    p.add_argument("name", nargs="?", help="only this person's sessions")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--end", metavar="ID", help="end this session")
    g.add_argument("--end-all", action="store_true", help="end every session of NAME (sign out everywhere)")
    p.set_defaults(func=cmd_sessions)
    p = usub.add_parser(
        "link",
        parents=[system_options()],
        help="make a host login act as a person in the CLI (one actor name for their page and CLI actions)",
    )
    p.add_argument("name", help="the person's sign-in name")
    p.add_argument("--login", help="the login name on this kind of host (default: yours)")
    p.set_defaults(func=cmd_link)
    p = usub.add_parser(
        "list", parents=[system_options()], help="list people (and the logins linked to them)"
    )
    p.set_defaults(func=cmd_list)
