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

import time

from foto3d.libs.bus.connection import Bus
from foto3d.libs.logsdk.batched import BatchedRecords
from foto3d.proto.logs import Level, LogRecord

SIGN_IN_SOURCE_KIND = "signin"
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
        self.host = host
        self._seq = int(time.time() * 1000) * 1000
        self.batches = BatchedRecords(
            bus,
            SIGN_IN_SOURCE_KIND,
            f"dashboard.{instance}",
            host,
            flush_s=flush_s,
            max_buffered=MAX_BUFFERED,
        )

    @property
    def dropped(self) -> int:
        return self.batches.dropped

    def start(self) -> None:
        self.batches.start("auth:signin-log")

    async def stop(self) -> None:
        await self.batches.stop()

    def add(self, level: Level, message: str) -> None:
        self._seq += 1
        record = LogRecord(
            ts=time.time(), seq=self._seq, level=int(level), message=message, logger="signin", host=self.host
        )
        # an ERROR is an incident: people are waiting to hear of it
        self.batches.add(record, urgent=level >= Level.ERROR)
