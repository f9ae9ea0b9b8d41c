"""`foto3d up`: bring the whole system up on embedded defaults."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from foto3d.cli.common import fail, run_async, settings_from, system_options

ORDER = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "up",
        parents=[system_options()],
        help="start everything: embedded NATS, all services, dashboard",
        description=(
            "Start an embedded nats-server (JetStream, stored under DATA/nats), every service in one "
            "process, and the dashboard and HTTP API on 127.0.0.1:PORT. Ctrl-C stops everything cleanly; "
            "a second `up` on the same data folder resumes with all data."
        ),
    )
    p.add_argument(
        "--port", type=int, default=None, help="HTTP port of dashboard and API (default 8080; 0 = any)"
    )
    p.set_defaults(func=cmd_up)


def cmd_up(args: argparse.Namespace) -> int:
    from foto3d.app.up import run_up

    if not args.verbose:
        logging.getLogger().setLevel(logging.INFO)
        logging.getLogger("aiohttp").setLevel(logging.WARNING)
    if args.nats:
        return fail(
            "--nats does not apply to `foto3d up`, which runs its own embedded NATS server; "
            "to use an existing cluster, run each service with `foto3d serve NAME --nats URL`"
        )
    settings = settings_from(args)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return fail(f"cannot create data folder {settings.data_dir}: {exc.strerror or exc}")
    try:
        return run_async(lambda: run_up(settings))
    except OSError as exc:  # e.g. the port is taken; everything started has been stopped again
        return fail(str(exc) + _admin_hint(settings.data_dir))


def _admin_hint(data: Path) -> str:
    """A failed first start may already have created `admin`: say how its password is found again."""
    from foto3d.libs.auth import UserStore

    if not (data / "auth" / "users.db").exists():
        return ""
    if asyncio.run(UserStore.in_data_dir(data).get("admin")) is None:
        return ""
    return (
        "; the staff user 'admin' exists: the next `foto3d up` shows its generated password again "
        "until it is changed (or set one now with `foto3d users passwd admin`)"
    )
