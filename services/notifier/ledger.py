"""The sent ledger: which messages any notifier instance has handed to their receiver.

Several notifier instances each keep their own sqlite projection of the bus (alerts
and outbox), so a standby's outbox holds the same messages as the leader's, under the
same Message-IDs (``compose.message_id_for``). Only the lease holder delivers; after
each accepted delivery it writes the message's key into the ``notifier-sent`` KV
bucket *before* starting the next one. A standby marks the rows it finds there as
sent, and a new leader skips them, so a message is delivered once by whichever
instance leads. The one window left is between the receiver's accept and the ledger
write (one KV round trip): a leader killed exactly there has its last message sent
again, with the same Message-ID, which mail clients drop as a duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

import nats.errors
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.topology import KVSpec
from foto3d.proto.permissions import NOTIFIER_LEASE_BUCKET, NOTIFIER_SENT_BUCKET
from foto3d.services.notifier.store import Store

log = logging.getLogger(__name__)

SENT_LEDGER = KVSpec(
    NOTIFIER_SENT_BUCKET,
    "Messages a notifier instance delivered (key: hash of the Message-ID), so no other instance sends them.",
    ttl=7 * 86_400.0,
)
NOTIFIER_LEASE = KVSpec(
    NOTIFIER_LEASE_BUCKET,
    "Leadership lease of the notifier: only the holder delivers mail, webhooks and alert events.",
    ttl=5.0,
)


def ledger_key(message_id: str) -> str:
    """KV keys allow few characters; a Message-ID has ``<``, ``@`` and ``>``."""
    return hashlib.sha256(message_id.encode()).hexdigest()[:40]


class SentLedger:
    def __init__(self, bus: Bus, instance: str) -> None:
        self.bus = bus
        self.instance = instance
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self.bus.js.key_value(SENT_LEDGER.bucket)
        return self._kv

    async def was_sent(self, message_id: str) -> bool:
        kv = await self._bucket()
        try:
            await asyncio.wait_for(kv.get(ledger_key(message_id)), 2.0)
        except KeyNotFoundError:
            return False
        return True

    async def note(self, message_id: str) -> None:
        """Record a delivery; retried, since a lost entry means a duplicate after a takeover."""
        kv = await self._bucket()
        for attempt in range(5):
            try:
                await asyncio.wait_for(kv.put(ledger_key(message_id), self.instance.encode()), 2.0)
                return
            except (TimeoutError, nats.errors.Error) as exc:
                log.info("sent ledger: writing %s failed (%r), attempt %d", message_id, exc, attempt + 1)
                await asyncio.sleep(0.2 * (attempt + 1))
        log.warning("sent ledger: could not record %s; a standby taking over may send it again", message_id)

    async def follow(self, store: Store) -> int:
        """Mark the pending rows another instance delivered as sent; returns how many."""
        marked = 0
        for row in await store.pending():
            try:
                if await self.was_sent(row.message_id):
                    await store.mark_sent(row.id)
                    marked += 1
            except (TimeoutError, nats.errors.Error) as exc:
                log.info("sent ledger: cannot read (%r); trying again later", exc)
                break
        return marked
