"""Live tail: fan committed records out to every connected client.

The collector publishes each committed batch here once; every client (an SSE
stream) gets its own bounded queue and its own filter. A client that cannot
keep up loses records (counted and reported to it as a gap) instead of making
the collector or the other clients wait.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from foto3d.proto.logs import LogQuery, StoredLog, matches


@dataclass(eq=False)
class Subscriber:
    query: LogQuery
    queue: asyncio.Queue[list[StoredLog] | None]
    dropped: int = 0

    def offer(self, records: list[StoredLog]) -> None:
        chosen = [r for r in records if matches(self.query, r)]
        if not chosen:
            return
        try:
            self.queue.put_nowait(chosen)
        except asyncio.QueueFull:
            self.dropped += len(chosen)

    def end(self) -> None:
        while True:
            try:
                self.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                self.queue.get_nowait()


@dataclass
class TailHub:
    # Committed batches a client may have waiting before it starts losing records.
    max_pending: int = 256
    subscribers: set[Subscriber] = field(default_factory=set)
    closed: bool = False

    @property
    def active(self) -> bool:
        return bool(self.subscribers)

    def subscribe(self, query: LogQuery) -> Subscriber:
        sub = Subscriber(query, asyncio.Queue(self.max_pending))
        if self.closed:
            sub.end()
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def publish(self, records: list[StoredLog]) -> None:
        for sub in list(self.subscribers):
            sub.offer(records)

    def close(self) -> None:
        self.closed = True
        for sub in list(self.subscribers):
            sub.end()
