"""The clock that ends subscriptions: sleeps until the next warning or end, then carries it out.

An end disables each live model the subscription covers through :meth:`Catalog.set_status`,
the path a manual disable takes (the token gateway follows that event at once), with the
subscription as the actor, so the timeline says what switched the model off. Then staff get
one mail, and only then is the end recorded as done.

Nothing is lost or doubled across a restart: every step is named by the subscription, its
end and the model (the status event's id, the mail's notice id), so a step repeated after a
restart is deduplicated on the bus (``Nats-Msg-Id``), in the timeline (event ids) and in the
notifier's outbox (the notice id is the mail's Message-ID); and a step is recorded as done
only after it happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from foto3d.libs.bus.connection import Bus
from foto3d.proto import subjects
from foto3d.proto.auth import StaffNotice
from foto3d.proto.objects import LiveStatus
from foto3d.proto.subscriptions import Requested
from foto3d.proto.webhooks import WebhookType
from foto3d.services.catalog.actions import Catalog
from foto3d.services.catalog.settings import SubscriptionSettings
from foto3d.services.catalog.subscriptions import (
    SubscriptionBook,
    covered_by_others,
    due_end,
    due_warning,
    effective_end,
    next_due,
)
from foto3d.services.catalog.webhook_events import WebhookQueue

log = logging.getLogger(__name__)
DAY = 86_400.0
# Wake at least this often: a wall clock that jumped, or a failed step, is looked at again.
MAX_SLEEP_S = 60.0
RETRY_S = 5.0
NOTICE_SOURCE = "catalog"


def step_id(kind: str, *parts: object) -> str:
    """A stable id for one step of one subscription's end (fits event and notice ids)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"sub-{kind}-{digest}"


def actor_of(row: dict[str, Any]) -> str:
    return f"subscription:{row['subscription_id']}"


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


class SubscriptionClock:
    def __init__(
        self,
        book: SubscriptionBook,
        catalog: Catalog,
        bus: Bus,
        cfg: SubscriptionSettings,
        webhooks: WebhookQueue | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = book
        self.catalog = catalog
        self.bus = bus
        self.cfg = cfg
        self.clock = clock
        self.webhooks = webhooks
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_error = ""

    @property
    def notice_s(self) -> float:
        return self.cfg.notice_days * DAY

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="catalog:subscriptions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """A subscription changed: look again now (its end may be nearer than the one slept for)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            sleep = MAX_SLEEP_S
            try:
                await self.tick()
                self.last_error = ""
                nxt = next_due(await self.book.open_rows(), self.notice_s, self.clock())
                if nxt is not None:
                    sleep = min(MAX_SLEEP_S, max(0.0, nxt - self.clock()))
            except Exception as exc:  # the bus or a step failed: try again soon, never give up
                self.last_error = repr(exc)
                log.warning("subscriptions: %r; trying again in %.0f s", exc, RETRY_S)
                sleep = RETRY_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=sleep)

    async def tick(self) -> None:
        """Send the warnings and carry out the ends that are due now."""
        now = self.clock()
        for row in await self.book.open_rows():
            if due_end(row, now):
                await self.end(row)
            elif due_warning(row, now, self.notice_s):
                await self.warn(row)

    async def warn(self, row: dict[str, Any]) -> None:
        end = float(row["end"])
        what = self._covers(row)
        await self._mail(
            step_id("warn", row["subscription_id"], end),
            f"subscription {row['subscription_id']} of {row['customer']} ends {utc(end)}",
            f"The subscription {row['subscription_id']} of customer {row['customer']} ends on {utc(end)}.\n"
            f"Then {what} will be disabled by itself (the viewer stops showing them) unless the CRM "
            "moves its end date.",
        )
        if self.webhooks is not None:
            data = {"subscription_id": row["subscription_id"], "end": end, "object_id": row["object_id"]}
            await self.webhooks.enqueue(
                row["customer"],
                WebhookType.SUBSCRIPTION_ENDING,
                {k: v for k, v in data.items() if v != ""},
                step_id("warn", row["subscription_id"], end),
                self.clock(),
            )
        await self.book.mark_warned(row["subscription_id"], row["revision"], end)

    async def end(self, row: dict[str, Any]) -> None:
        end = effective_end(row)
        sub = row["subscription_id"]
        how = "cancelled" if row["requested"] == Requested.CANCELLED.value else "ended"
        reason = f"subscription {sub} {how} {utc(end)}"
        if row["object_id"]:
            live = [row["object_id"]] if row["object_id"] in await self._live(row["customer"]) else []
        else:
            live = await self._live(row["customer"])
        whole, models = covered_by_others(await self.book.rows(row["customer"]), row, self.clock())
        kept = live if whole else [o for o in live if o in models]
        live = [o for o in live if o not in kept]
        for object_id in live:
            await self.catalog.set_status(
                object_id,
                LiveStatus.DISABLED,
                reason,
                actor_of(row),
                event_id=step_id("disable", sub, end, object_id),
            )
        names = ", ".join(live) if live else "none (no live model)"
        if kept:
            names += f"; kept live, as another subscription covers them: {', '.join(kept)}"
        await self._mail(
            step_id("ended", sub, end),
            f"subscription {sub} of {row['customer']} {how}: models disabled",
            f"The subscription {sub} of customer {row['customer']} {how} on {utc(end)}.\n"
            f"Models disabled by it: {names}.\n"
            "Each model's timeline shows the change; enable a model again with "
            "`foto3d objects status ID production` once the subscription is renewed.",
        )
        if await self.book.mark_ended(sub, row["revision"], self.clock()):
            log.info("subscriptions: %s %s, %d model(s) disabled", sub, how, len(live))

    async def _live(self, customer: str) -> list[str]:
        return await self.catalog.store.live_objects(customer)

    def _covers(self, row: dict[str, Any]) -> str:
        return (
            f"the model {row['object_id']}" if row["object_id"] else f"every live model of {row['customer']}"
        )

    async def _mail(self, notice_id: str, subject: str, text: str) -> None:
        """One mail per staff address, through the notifier's outbox (sent once per notice id)."""
        for to in self.cfg.mail_to:
            nid = step_id("mail", notice_id, to) if len(self.cfg.mail_to) > 1 else notice_id
            notice = StaffNotice(
                notice_id=nid, to=to, user="subscriptions", subject=subject, text=text, at=self.clock()
            )
            await self.bus.publish(subjects.auth_notices(NOTICE_SOURCE), notice, msg_id=nid)
