"""`foto3d serve NAME`: run one service alone against any NATS cluster."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from foto3d.app.registry import SERVICES, by_name
from foto3d.app.runtime import Runtime
from foto3d.cli.common import CREDS_ENV, data_key, fail, run_async, settings_from, system_options
from foto3d.libs.discovery import resolve_nats_urls
from foto3d.proto.permissions import ROLES, may_publish, service_role
from foto3d.proto.subjects import LOGS_STREAM

ORDER = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    names = ", ".join(e.name for e in SERVICES)
    p = sub.add_parser(
        "serve",
        parents=[system_options()],
        help="run one service against a NATS cluster",
        description=f"Run one service alone. Services: {names}.",
    )
    p.add_argument("name", help="service to run")
    p.add_argument("--port", type=int, default=None, help="HTTP port for the service's API (0 = any)")
    p.add_argument("--no-http", action="store_true", help="do not serve HTTP")
    p.add_argument(
        "--max-jobs",
        type=int,
        metavar="N",
        default=None,
        help="trainer only: exit after N jobs (one trainer per dataset; config [trainer] max_jobs)",
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        entry = by_name(args.name)
    except KeyError as exc:
        return fail(str(exc.args[0]))
    if not entry.available():
        return fail(f"service {entry.name} is not installed in this build")
    if not args.verbose:
        logging.getLogger().setLevel(logging.INFO)
    settings = settings_from(args)
    urls = resolve_nats_urls(settings)
    role = service_role(entry.name)
    # The data folder's identity of this service (`foto3d auth`), unless --creds named one;
    # against a --nats cluster, FOTO3D_NATS_CREDS comes first.
    key = data_key(settings, role)
    if key is not None and not args.creds and not (settings.nats_urls and os.environ.get(CREDS_ENV)):
        os.environ[CREDS_ENV] = str(key)
    if args.max_jobs is not None:
        if entry.name != "trainer" or args.max_jobs < 0:
            return fail("--max-jobs takes a number >= 0 and only applies to the trainer")
        os.environ["FOTO3D_TRAINER_MAX_JOBS"] = str(args.max_jobs)

    async def main() -> int:
        rt = Runtime(
            settings,
            urls,
            [entry],
            http=not args.no_http,
            http_host=settings.http_host,
            http_port=settings.http_port,
            # A role that may not create streams (a trainer) finds them made by the services.
            provision_topology=may_publish(ROLES[role], f"$JS.API.STREAM.CREATE.{LOGS_STREAM}"),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await rt.start()
            where = f" (HTTP {rt.http_url})" if rt.http_url else ""
            print(f"{entry.name} is running against {', '.join(urls)}{where}", flush=True)
            await stop.wait()
        finally:
            await rt.stop()
        return 0

    return run_async(main)
