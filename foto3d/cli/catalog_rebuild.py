"""`foto3d objects rebuild`: recreate the catalog's database from the event streams.

The catalog must be stopped. The current database (if any) is moved aside, never
deleted; then the catalog service runs once in this process: finding no database, it
reads OBJECT_EVENTS and JOB_EVENTS from their first message (``services/catalog/rebuild.py``)
and stops. Runbook: docs/runbooks/restore-the-catalog.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nats.errors

from foto3d.app.registry import by_name
from foto3d.app.runtime import Runtime
from foto3d.cli.common import CREDS_ENV, connect_cli, data_key, fail, run_async, settings_from
from foto3d.libs.config import ConfigError
from foto3d.libs.discovery import resolve_nats_urls
from foto3d.proto import objects as catalog
from foto3d.proto.api import NoBody, ServiceError
from foto3d.proto.permissions import service_role

DB = "catalog.db"
BOOKS = ("subscriptions.db", "webhooks.db")


def add_rebuild(
    osub: argparse._SubParsersAction[argparse.ArgumentParser], common: list[argparse.ArgumentParser]
) -> None:
    p = osub.add_parser(
        "rebuild",
        parents=common,
        help="recreate the catalog's database from the event streams (catalog stopped)",
        description=(
            "Recreate the catalog's sqlite database from OBJECT_EVENTS and JOB_EVENTS, keeping the "
            "stored reference images. Stop the catalog first. An existing database is moved aside "
            "(catalog.db.replaced-<time>) only with --replace. Customers' names are not in the events: "
            "they come back as their ids (docs/failover.md)."
        ),
    )
    p.add_argument("--replace", action="store_true", help="move an existing database aside and rebuild")
    p.set_defaults(func=cmd_rebuild)


async def _catalog_answers(args: argparse.Namespace) -> bool:
    bus = await connect_cli(settings_from(args))
    try:
        # No grace for "no responders": it is the answer wanted here, not a restart to ride out.
        await bus.call(catalog.CUSTOMERS, NoBody(), timeout=2.0, no_responder_grace=0)
        return True
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError):
        return False
    except ServiceError:
        return True
    finally:
        await bus.close()


def _move_aside(folder: Path) -> Path:
    """The database and the subscription and webhook books (rebuilt from CATALOG_BOOKS);
    the webhook delivery log in ``webhooks.db`` goes aside with them."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = folder / f"{DB}.replaced-{stamp}"
    for name in (DB, *BOOKS):
        for suffix in ("", "-wal", "-shm"):
            src = folder / f"{name}{suffix}"
            if src.exists():
                src.rename(folder / f"{name}.replaced-{stamp}{suffix}")
    return target


def cmd_rebuild(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
        urls = resolve_nats_urls(settings)
    except ConfigError as exc:
        return fail(str(exc))
    key = data_key(settings, service_role("catalog"))
    if key is not None and not args.creds and not (settings.nats_urls and os.environ.get(CREDS_ENV)):
        os.environ[CREDS_ENV] = str(key)
    folder = settings.data_dir / "catalog"

    async def main() -> int:
        if await _catalog_answers(args):
            return fail("the catalog is running: stop it first (`foto3d up` or `foto3d serve catalog`)")
        if (folder / DB).exists():
            if not args.replace:
                return fail(f"{folder / DB} exists: pass --replace to move it aside and rebuild")
            print(f"moved the old database aside: {_move_aside(folder)}")
        rt = Runtime(settings, urls, [by_name("catalog")], http=False)
        try:
            await rt.start()
            report = getattr(rt.services[0], "last_rebuild", None)
        finally:
            await rt.stop()
        print(report.line() if report is not None else "the catalog found its database; nothing rebuilt")
        return 0

    return run_async(main)
