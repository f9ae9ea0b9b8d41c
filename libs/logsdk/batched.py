"""Records a service writes itself (an access log, a sign-in log), shipped to the log server in batches.

A record per request must not become a JetStream message per request: a busy gateway or a
guesser at the sign-in form would turn each try into a publish. Records are buffered and sent
as one ``LogBatch`` every ``flush_s`` (at once when a batch is full or a record is urgent);
a batch that cannot be sent is kept for the next flush (same ``batch_id``, so a publish that
timed out but landed is not stored twice); past ``max_buffered`` the oldest are dropped and
counted, which the owner reports in its health.
"""

from __future__ import annotations

import asyncio
import logging

from foto3d.libs.bus.connection import Bus
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.proto.logs import LogBatch, LogRecord

log = logging.getLogger(__name__)


class BatchedRecords:
    def __init__(
        self,
        bus: Bus | None,
        source_kind: str,
        source_id: str,
        host: str,
        *,
        flush_s: float = 0.5,
        max_batch: int = 500,
        max_buffered: int = 20_000,
        deadline_s: float = 10.0,
    ) -> None:
        self.bus = bus
        self.source_kind = source_kind
        self.source_id = source_id[:128]
        self.host = host
        self.subject = subjects.logs(source_kind, self.source_id)
        self.flush_s = flush_s
        self.max_batch = max_batch
        self.max_buffered = max_buffered
        self.deadline_s = deadline_s
        self.sent = 0
        self.dropped = 0
        self._records: list[LogRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Records buffered and not yet sent."""
        return len(self._records)

    def start(self, name: str) -> None:
        if self.bus is not None:
            self._task = asyncio.create_task(self._loop(), name=name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.flush()

    def add(self, record: LogRecord, urgent: bool = False) -> None:
        """Buffer ``record``; ``urgent`` sends its batch now (someone waits to hear of it)."""
        if self.bus is None:
            return
        self._records.append(record)
        if len(self._records) > self.max_buffered:
            cut = len(self._records) - self.max_buffered
            del self._records[:cut]
            self.dropped += cut
        if urgent or len(self._records) >= self.max_batch:
            self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        while self._records and self.bus is not None:
            chunk = self._records[: self.max_batch]
            batch = LogBatch(
                batch_id=f"{self.source_id}:{chunk[0].seq}",
                source_kind=self.source_kind,
                source_id=self.source_id,
                host=self.host,
                records=chunk,
            )
            try:
                await self.bus.publish(self.subject, batch, msg_id=batch.batch_id, deadline=self.deadline_s)
            except Exception as exc:  # kept; the next flush tries again with the same batch id
                log.warning(
                    "%s log batch not sent (%d records kept): %r", self.source_kind, len(self._records), exc
                )
                return
            del self._records[: len(chunk)]
            self.sent += len(chunk)
