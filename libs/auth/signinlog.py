"""The sign-in log: every sign-in, right, wrong or refused, as a log record in the log server.

Records have source kind ``signin`` (``foto3d logs --kind signin``, the Logs page, the
Sign-ins page) and say ``outcome user=<name> ip=<address> ua="<user agent>"`` so the
log server's full-text search finds a user's or an address's sign-ins. Wrong passwords are
WARNING; the failure that locks an account is ERROR, which the notifier turns into one alert
mail per incident (its fingerprint masks the numbers, so later locks of the same burst count
into the same alert). Records travel in batches, as the gateway's access log does: a guesser
must not be able to turn each try into a JetStream message of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time

from foto3d.libs.bus.connection import Bus
from foto3d.libs.tasks import cancel_and_wait
from foto3d.proto import subjects
from foto3d.proto.logs import Level, LogBatch, LogRecord

log = logging.getLogger(__name__)

SIGN_IN_SOURCE_KIND = "signin"
MAX_BATCH = 500
MAX_BUFFERED = 20_000
MAX_UA_CHARS = 200


def describe(outcome: str, user: str, address: str, user_agent: str, detail: str = "") -> str:
    ua = user_agent[:MAX_UA_CHARS].replace('"', "'")
    words = [outcome, f"user={user[:128]}", f"ip={address}", f'ua="{ua}"']
    if detail:
        words.append(detail)
    return " ".join(words)


class SignInLog:
    def __init__(self, bus: Bus | None, instance: str, host: str, flush_s: float = 0.5) -> None:
        self.bus = bus
        self.host = host
        self.source_id = f"dashboard.{instance}"[:128]
        self.subject = subjects.logs(SIGN_IN_SOURCE_KIND, self.source_id)
        self.flush_s = flush_s
        self.dropped = 0
        self._seq = int(time.time() * 1000) * 1000
        self._records: list[LogRecord] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.bus is not None:
            self._task = asyncio.create_task(self._loop(), name="auth:signin-log")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._flush()

    def add(self, level: Level, message: str) -> None:
        if self.bus is None:
            return
        self._seq += 1
        record = LogRecord(
            ts=time.time(), seq=self._seq, level=int(level), message=message, logger="signin", host=self.host
        )
        self._records.append(record)
        if len(self._records) > MAX_BUFFERED:
            cut = len(self._records) - MAX_BUFFERED
            del self._records[:cut]
            self.dropped += cut
        if level >= Level.ERROR or len(self._records) >= MAX_BATCH:
            self._wake.set()  # people are waiting to hear of an incident

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_s)
            except TimeoutError:
                pass
            self._wake.clear()
            await self._flush()

    async def _flush(self) -> None:
        while self._records and self.bus is not None:
            chunk = self._records[:MAX_BATCH]
            batch = LogBatch(
                batch_id=f"{self.source_id}:{chunk[0].seq}",
                source_kind=SIGN_IN_SOURCE_KIND,
                source_id=self.source_id,
                host=self.host,
                records=chunk,
            )
            try:
                await self.bus.publish(self.subject, batch, msg_id=batch.batch_id, deadline=10.0)
            except Exception as exc:
                log.warning("sign-in log batch not sent (kept for the next flush): %r", exc)
                return
            del self._records[: len(chunk)]
