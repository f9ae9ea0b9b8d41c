"""Log records and the batches they travel in.

Records travel in batches (one NATS message carries many records) because a
JetStream message per record caps out near 25k/s with the Python client.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated

import msgspec

from foto3d.proto.api import Api
from foto3d.proto.base import Count, Event, Int, Real

# A record's message is truncated to this many characters, with a visible marker.
MAX_MESSAGE_CHARS = 16_000
MAX_EXC_CHARS = 32_000
TRUNCATION_MARKER = " …[truncated {n} chars]"
# The logger of the records `foto3d run` writes about the command it runs; on its
# "command exited" record of a failure, ``exc`` holds the command's last stderr lines.
RUN_LOGGER = "foto3d.run"
# One batch message stays well below the server's default 1 MiB max payload.
MAX_BATCH_BYTES = 512 * 1024


class Level(IntEnum):
    """Python's logging levels, so filtering 'warning and above' is a comparison."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @classmethod
    def parse(cls, text: str | int) -> Level:
        """Accept ``"warning"``, ``"WARN"``, ``"40"`` or ``40``; raise ValueError otherwise."""
        if isinstance(text, int):
            return cls(text)
        t = text.strip().upper()
        if t.isdigit():
            return cls(int(t))
        aliases = {"WARN": "WARNING", "ERR": "ERROR", "FATAL": "CRITICAL", "CRIT": "CRITICAL"}
        t = aliases.get(t, t)
        try:
            return cls[t]
        except KeyError:
            names = ", ".join(n.lower() for n in cls.__members__)
            raise ValueError(f"unknown log level {text!r} (use one of: {names})") from None


SourceId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]
SourceKind = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")]


class LogRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One log line. ``(source_kind, source_id, seq)`` identifies it exactly once."""

    ts: Real
    seq: Count
    level: Int
    message: str
    logger: str = ""
    host: str = ""
    job_id: str | None = None
    object_id: str | None = None
    exc: str | None = None


class LogBatch(Event, frozen=True, kw_only=True, tag="log.batch/1"):
    """Many records from one source. The batch id doubles as ``Nats-Msg-Id``."""

    batch_id: str
    source_kind: SourceKind
    source_id: SourceId
    host: str
    records: list[LogRecord]
    # Attributes shared by every record unless a record overrides them.
    job_id: str | None = None
    object_id: str | None = None


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, leaving a marker that says how much went."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return text[:limit] + TRUNCATION_MARKER.format(n=cut)


class StoredLog(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A record as the log store returns it (with its source and store id)."""

    id: Count
    source_kind: str
    source_id: str
    ts: Real
    seq: Count
    level: Int
    message: str
    logger: str = ""
    host: str = ""
    job_id: str | None = None
    object_id: str | None = None
    exc: str | None = None


def log_cursor(r: StoredLog) -> str:
    """Where the page after ``r`` starts: its place in time order, as ``ts:seq:kind:source``.

    The source id goes last because it is the one part that may contain ``:``.
    """
    return f"{r.ts!r}:{r.seq}:{r.source_kind}:{r.source_id}"


def parse_log_cursor(text: str) -> tuple[float, str, str, int]:
    """``(ts, source_kind, source_id, seq)`` from :func:`log_cursor`; ValueError says why not."""
    parts = text.split(":", 3)
    try:
        if len(parts) != 4 or not parts[2] or not parts[3]:
            raise ValueError
        return float(parts[0]), parts[2], parts[3], int(parts[1])
    except ValueError:
        raise ValueError(
            f"cannot read paging cursor {text!r}: pass the reply's next_before unchanged"
        ) from None


class LogQuery(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Body of the ``f3d.api.logs.query`` request (and the fields of ``GET /api/logs``).

    Results are newest first by the records' own time (``ts``), ties broken by source
    and sequence, so a batch that arrives late (a spool replay, a rig back online)
    still sorts where it was written. Pass the reply's ``next_before`` as ``before``
    for the next page. ``around_ts`` returns the ``limit`` records closest before
    and at that time (for alert mails: the lines around an error).
    """

    source_kind: str | None = None
    source_id: str | None = None
    job_id: str | None = None
    object_id: str | None = None
    host: str | None = None
    min_level: Int | None = None
    since: Real | None = None
    until: Real | None = None
    text: str | None = None
    # A cursor from a reply's ``next_before``: only records older in time order.
    before: str | None = None
    around_ts: Real | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=5000)] = 100


class LogQueryReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Records newest first. ``next_before`` is set when more match: pass it as ``before``.

    A page ends early (fewer than ``limit`` records, ``next_before`` set) when the next
    record would make the reply larger than the transport carries (NATS' max payload).
    """

    records: list[StoredLog]
    next_before: str | None = None


# Any collector instance answers from its store.
LOG_QUERY: Api[LogQuery, LogQueryReply] = Api("logs", "query", LogQuery, LogQueryReply)


def search_words(text: str) -> list[tuple[str, bool]]:
    """The words of a text search, each with whether it ends in ``*`` (a prefix).

    A word without a letter or digit matches nothing (the store's tokenizer indexes only
    those), so it is dropped here for the store and the live tail alike.
    """
    out = []
    for word in text.split():
        core = word.rstrip("*")
        if any(ch.isalnum() for ch in core):
            out.append((core, word.endswith("*")))
    return out


def matches(q: LogQuery, r: StoredLog) -> bool:
    """Whether ``r`` answers ``q``, in memory: the live tail's twin of the store's filters.

    Text: every word occurs as a substring of the message or the exception.
    """
    if q.source_kind is not None and r.source_kind != q.source_kind:
        return False
    if q.source_id is not None and r.source_id != q.source_id:
        return False
    if q.job_id is not None and r.job_id != q.job_id:
        return False
    if q.object_id is not None and r.object_id != q.object_id:
        return False
    if q.host is not None and r.host != q.host:
        return False
    if q.min_level is not None and r.level < q.min_level:
        return False
    if q.since is not None and r.ts < q.since:
        return False
    if q.until is not None and r.ts > q.until:
        return False
    if q.text:
        hay = (r.message + "\n" + (r.exc or "")).lower()
        return all(word.lower() in hay for word, _ in search_words(q.text))
    return True


SCHEMAS = (LogRecord, StoredLog, LogQuery, LogQueryReply)
