"""The log lines around an alert: asked of the log store, merged with the lines at hand.

The store may be slow or away; then the lines that came with the event are used, and the
mail still goes out on time (``context_timeout``).
"""

from __future__ import annotations

import logging

import msgspec
import nats.errors

from foto3d.libs.bus.connection import Bus
from foto3d.proto.api import ServiceError
from foto3d.proto.logs import LOG_QUERY, LogQuery, LogQueryReply
from foto3d.services.notifier.model import AlertInfo, ContextLine

log = logging.getLogger(__name__)


class LogContext:
    def __init__(self, bus: Bus, lines: int, timeout: float) -> None:
        self.bus = bus
        self.lines = lines
        self.timeout = timeout
        self.misses = 0

    async def around(self, info: AlertInfo) -> list[ContextLine]:
        """The last ``lines`` log lines up to the event."""
        n = self.lines
        if n == 0:
            return []
        if info.job_id:
            q = LogQuery(job_id=info.job_id, until=info.ts, around_ts=info.ts, limit=n)
        elif info.source_kind and info.source_id:
            q = LogQuery(
                source_kind=info.source_kind,
                source_id=info.source_id,
                until=info.ts,
                around_ts=info.ts,
                limit=n,
            )
        else:
            return list(info.context)
        lines = {(c.source, c.seq if c.seq is not None else c.ts, c.message): c for c in info.context}
        try:
            reply = await self.bus.call(LOG_QUERY, q, timeout=self.timeout)
        except (
            TimeoutError,
            nats.errors.Error,
            ServiceError,
            msgspec.DecodeError,
            msgspec.ValidationError,
        ) as exc:
            self.misses += 1
            log.debug("log store did not answer (%r); using the lines at hand", exc)
            reply = LogQueryReply(records=[])
        for r in reply.records:
            src = f"{r.source_kind}/{r.source_id}"
            lines.setdefault(
                (src, r.seq, r.message),
                ContextLine(ts=r.ts, level=r.level, message=r.message, source=src, seq=r.seq),
            )
        # The store's own order (time, then source and sequence): a replayed batch sits
        # where it was written, not where it arrived.
        return sorted(lines.values(), key=lambda c: (c.ts, c.source, c.seq or 0))[-n:]
