"""`foto3d logs`: search the log store, or follow it live."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

import msgspec
import nats.errors

from foto3d.cli.common import connect_cli, fail, parse_since, run_async, settings_from, system_options
from foto3d.proto import subjects
from foto3d.proto.api import ServiceError
from foto3d.proto.logs import LOG_QUERY, Level, LogBatch, LogQuery, StoredLog, matches

if TYPE_CHECKING:
    from foto3d.libs.bus.connection import Bus

ORDER = 21
# Live records remembered for de-duplication against the first page and redeliveries.
SEEN_MAX = 100_000
# A live record this much older than the newest one shown arrived late (a spool replay,
# a rig back online) and is marked so; less is ordinary batching between sources.
LATE_AFTER_S = 5.0
QUERY_TIMEOUT_S = 15.0

COLOURS = {"DEBUG": "2", "INFO": "36", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;41;97"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "logs",
        parents=[system_options()],
        help="search the logs, or follow them live",
        description=(
            "Show log records from the log collector, oldest of the selection first. "
            "Filters combine (AND). With --follow, print the latest records and then new "
            "ones as they arrive, until Ctrl-C."
        ),
        epilog="Examples: foto3d logs --job J-42 --level warning;  foto3d logs --grep 'out of memory' --since 1d;  "
        "foto3d logs --kind trainer -f",
    )
    p.add_argument("--job", metavar="ID", help="only records of this job")
    p.add_argument("--object", metavar="ID", help="only records about this object")
    p.add_argument("--source", metavar="ID", help="only records from this source id (a rig, trainer, script)")
    p.add_argument(
        "--kind", metavar="KIND", help="only records from this kind of source (trainer, rig, run, …)"
    )
    p.add_argument("--host", metavar="H", help="only records from this host")
    p.add_argument(
        "--level", metavar="LEVEL", help="this level and above: debug, info, warning, error, critical"
    )
    p.add_argument(
        "--grep",
        metavar="TEXT",
        help="full-text search in message and exception; every word must occur (word* = prefix)",
    )
    p.add_argument("--since", metavar="T", help="not older than T: a look-back (30m, 2h, 1d) or an ISO time")
    p.add_argument("--until", metavar="T", help="not newer than T: a look-back or an ISO time")
    p.add_argument(
        "-n", "--limit", type=int, default=100, metavar="N", help="how many records (1-5000, default 100)"
    )
    p.add_argument(
        "-f", "--follow", action="store_true", help="after the latest N, keep printing new records"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    p.set_defaults(func=cmd_logs)


def build_query(args: argparse.Namespace) -> LogQuery:
    """The query from the options; ValueError says which option is wrong."""
    min_level = None
    if args.level:
        min_level = int(Level.parse(args.level))
    since = parse_since(args.since) if args.since else None
    until = parse_since(args.until) if args.until else None
    if not 1 <= args.limit <= 5000:
        raise ValueError(f"--limit must be between 1 and 5000, got {args.limit}")
    return LogQuery(
        job_id=args.job,
        object_id=args.object,
        source_id=args.source,
        source_kind=args.kind,
        host=args.host,
        min_level=min_level,
        since=since,
        until=until,
        text=args.grep,
        limit=args.limit,
    )


class QueryFailed(Exception):
    """The query could not be answered; the message says what happened and what to do."""


async def fetch_pages(bus: Bus, query: LogQuery) -> list[StoredLog]:
    """Up to ``query.limit`` records, newest first, over as many pages as that takes.

    The collector ends a page early when the next record would not fit one NATS message
    (long lines); its ``next_before`` says where the next page starts.
    """
    records: list[StoredLog] = []
    q = query
    while True:
        try:
            reply = await bus.call(LOG_QUERY, q, timeout=QUERY_TIMEOUT_S)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            raise QueryFailed(
                "the log collector is not answering: is `foto3d up` (or `foto3d serve log_collector`) running?"
            ) from None
        except ServiceError as exc:
            raise QueryFailed(
                f"the log collector could not answer: {exc.description} "
                "(check the options with `foto3d logs --help`; if they are right, the collector's "
                "own log says more)"
            ) from None
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise QueryFailed(
                f"the log collector's reply could not be read ({exc}): is it a different foto3d "
                "version? Update both to the same release"
            ) from None
        except nats.errors.Error as exc:
            raise QueryFailed(
                f"asking the log collector failed ({type(exc).__name__}: {exc or 'no detail'}): "
                "check that NATS is reachable and try again"
            ) from None
        records += reply.records
        if reply.next_before is None or len(records) >= query.limit or not reply.records:
            return records[: query.limit]
        q = msgspec.structs.replace(query, before=reply.next_before, limit=query.limit - len(records))


def follow_subject(q: LogQuery) -> str:
    """The narrowest log subject that still carries every record the query can match."""
    if q.source_kind and q.source_id:
        return subjects.logs(q.source_kind, q.source_id)
    if q.source_kind:
        return subjects.logs(q.source_kind, "x").rsplit(".", 1)[0] + ".>"
    return subjects.LOGS_ALL


def level_name(level: int) -> str:
    for lv in sorted(Level, reverse=True):
        if level >= lv:
            return lv.name
    return "DEBUG"


class Printer:
    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.colour = not as_json and out.isatty() and not os.environ.get("NO_COLOR")
        self.enc = msgspec.json.Encoder()

    def print(self, r: StoredLog, *, live: bool = False, late: bool = False) -> None:
        if self.as_json:
            d: dict[str, Any] = msgspec.to_builtins(r)
            if live:
                d.pop("id", None)  # not stored yet when it was seen on the wire
            if late:
                d["late"] = True
            self.out.write(self.enc.encode(d).decode() + "\n")
        else:
            self.out.write(self.format(r, late=late))
        self.out.flush()

    def format(self, r: StoredLog, *, late: bool = False) -> str:
        when = datetime.fromtimestamp(r.ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        name = level_name(r.level)
        lvl = f"{name:<8}"
        if self.colour:
            lvl = f"\033[{COLOURS[name]}m{name}\033[0m" + " " * (8 - len(name))
        refs = " ".join(
            x
            for x in (f"job={r.job_id}" if r.job_id else "", f"obj={r.object_id}" if r.object_id else "")
            if x
        )
        line = (
            f"{when} {lvl} {r.source_kind}/{r.source_id}"
            + (f" [{refs}]" if refs else "")
            + (" (late: arrived after newer lines)" if late else "")
            + f"  {r.message}\n"
        )
        if r.exc:
            line += "".join("    " + x + "\n" for x in r.exc.rstrip("\n").splitlines())
        return line


def cmd_logs(args: argparse.Namespace) -> int:
    try:
        query = build_query(args)
    except ValueError as exc:
        return fail(str(exc))
    settings = settings_from(args)
    printer = Printer(sys.stdout, args.json)

    async def main() -> int:
        bus = await connect_cli(settings)  # gives up with a readable error on a dead URL
        try:
            live: asyncio.Queue[bytes] = asyncio.Queue()
            sub = None
            if args.follow:
                # Subscribe before asking, so nothing falls between the page and the tail.
                async def on_msg(msg: Any) -> None:
                    live.put_nowait(msg.data)

                sub = await bus.nc.subscribe(follow_subject(query), cb=on_msg)
            try:
                records = await fetch_pages(bus, query)
            except QueryFailed as exc:
                return fail(str(exc))
            seen: dict[tuple[str, str, int], None] = {}
            newest = 0.0
            for r in reversed(records):
                printer.print(r)
                seen[(r.source_kind, r.source_id, r.seq)] = None
                newest = max(newest, r.ts)
            if not records and not args.json:
                print("no log records match these filters", file=sys.stderr)
            if sub is None:
                return 0
            live_query = msgspec.structs.replace(query, limit=1)
            decoder = msgspec.json.Decoder(LogBatch)
            while True:
                data = await live.get()
                try:
                    b = decoder.decode(data)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue  # the collector dead-letters it; nothing to show
                for rec in b.records:
                    key = (b.source_kind, b.source_id, rec.seq)
                    if key in seen:
                        continue
                    r = StoredLog(
                        id=0,
                        source_kind=b.source_kind,
                        source_id=b.source_id,
                        ts=rec.ts,
                        seq=rec.seq,
                        level=rec.level,
                        message=rec.message,
                        logger=rec.logger,
                        host=rec.host or b.host,
                        job_id=rec.job_id if rec.job_id is not None else b.job_id,
                        object_id=rec.object_id if rec.object_id is not None else b.object_id,
                        exc=rec.exc,
                    )
                    if not matches(live_query, r):
                        continue
                    seen[key] = None
                    if len(seen) > SEEN_MAX:
                        del seen[next(iter(seen))]
                    printer.print(r, live=True, late=r.ts < newest - LATE_AFTER_S)
                    newest = max(newest, r.ts)
        finally:
            await bus.close()

    try:
        return run_async(main)
    except nats.errors.Error as exc:  # e.g. the connection closed under --follow's subscription
        return fail(
            f"lost the connection to NATS ({type(exc).__name__}: {exc or 'no detail'}): "
            "check that the server is up (`foto3d status`) and run the command again"
        )
