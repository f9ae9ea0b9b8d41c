"""Read a :class:`LogQuery` from URL query parameters, with errors that name the parameter."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime

from foto3d.proto.logs import Level, LogQuery, parse_log_cursor

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$", re.IGNORECASE)
_UNIT = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
MAX_LIMIT = 5000


class BadParam(ValueError):
    """A query parameter that cannot be used; the message names it and says why."""


def parse_time(text: str, *, now: float | None = None) -> float:
    """Epoch seconds from ``1700000000.5``, a look-back like ``15m``/``2h``/``1d``, or ISO 8601."""
    t = text.strip()
    m = _DURATION.match(t)
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNIT[m.group(2).lower()]
    try:
        return float(t)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r} (use a look-back like 15m, 2h, 1d, an ISO time, or epoch seconds)"
        ) from None


def query_from_params(p: Mapping[str, str]) -> LogQuery:
    known = {"job", "object", "source", "kind", "host", "level", "since", "until", "q", "before"}
    known |= {"limit", "around"}
    unknown = sorted(set(p) - known)
    if unknown:
        raise BadParam(f"unknown parameter {unknown[0]!r} (known: {', '.join(sorted(known))})")

    def text(name: str) -> str | None:
        v = p.get(name, "").strip()
        return v or None

    def integer(name: str, lo: int, hi: int | None = None) -> int | None:
        v = text(name)
        if v is None:
            return None
        try:
            n = int(v)
        except ValueError:
            raise BadParam(f"{name}: {v!r} is not a whole number") from None
        if n < lo or (hi is not None and n > hi):
            raise BadParam(f"{name}: {n} is out of range ({lo}..{hi if hi is not None else ''})")
        return n

    def moment(name: str) -> float | None:
        v = text(name)
        if v is None:
            return None
        try:
            return parse_time(v)
        except ValueError as exc:
            raise BadParam(f"{name}: {exc}") from None

    def cursor(name: str) -> str | None:
        v = text(name)
        if v is not None:
            try:
                parse_log_cursor(v)
            except ValueError as exc:
                raise BadParam(f"{name}: {exc}") from None
        return v

    level = text("level")
    min_level: int | None = None
    if level is not None:
        try:
            min_level = int(Level.parse(level))
        except ValueError as exc:
            raise BadParam(f"level: {exc}") from None
    since, until = moment("since"), moment("until")
    if since is not None and until is not None and since > until:
        raise BadParam("since: is later than until")
    return LogQuery(
        job_id=text("job"),
        object_id=text("object"),
        source_id=text("source"),
        source_kind=text("kind"),
        host=text("host"),
        min_level=min_level,
        since=since,
        until=until,
        text=text("q"),
        before=cursor("before"),
        around_ts=moment("around"),
        limit=integer("limit", 1, MAX_LIMIT) or 100,
    )
