"""The site in use sources the rig's log stream over the leaf link; this keeps it so.

Sourcing is the site's own nats-server pulling from the rig's (``$JS.rig-<id>.API``)
through a durable consumer on the rig whose acknowledgements are the site's
flow-control replies (nats-server 2.14+, "durable sourcing"): a batch leaves the rig's
work-queue stream only once the site has stored it, in order, and a message the site
already holds (same source sequence, or same ``Nats-Msg-Id`` within its duplicate
window) is not stored twice. Nothing passes through the agent.

The agent's part is the wiring, checked again every ``probe_interval_s``:

* on the rig, exactly one sourcing consumer exists, the one of the site in use
  (``to-<site>``, delivering on ``f3d.leaf.<rig>.<site>``). A failover deletes the old
  site's consumer and creates the new one, which starts at the first batch still on
  the rig: what the old site had acknowledged is gone from the rig already.
* at that site, the LOGS stream lists the rig as a source. Stream configs have no
  compare-and-set, so two rigs attaching at once can overwrite each other's update:
  each re-reads after writing and the periodic check repairs a lost source, which then
  resumes where the site's stream says it stopped.

A source left at a site the rig moved away from names a consumer that no longer exists
on the rig, so it receives nothing; it resumes only if the rig comes back to that site.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ExternalStream,
    StreamConsumerSource,
    StreamSource,
)
from nats.js.errors import NotFoundError

from foto3d.proto.rig import RIG_LOGS_STREAM, rig_js_api, rig_source_consumer, rig_source_subject
from foto3d.proto.subjects import LOGS_STREAM
from foto3d.rig.settings import RigSettings
from foto3d.rig.sites import SiteLink, SitePicker

log = logging.getLogger(__name__)
CONSUMER_PREFIX = rig_source_consumer("")
# Batches in flight to the site before it must acknowledge (its flow-control window).
SOURCE_ACK_PENDING = 1000
# The consumer's idle heartbeat: also how often the site acknowledges while quiet.
SOURCE_HEARTBEAT_S = 0.5
REFRESH_S = 0.25
# A source that has heard nothing (not even the idle heartbeat) for this long has no leaf link;
# told to the operator once that lasted LINK_GRACE_S with batches waiting (a new source's first
# set-up takes a few seconds: the site retries it on its own clock).
SILENT_LINK_S = 5 * SOURCE_HEARTBEAT_S
LINK_GRACE_S = 10.0
SILENT = "no contact over the leaf link"
# Writes that may be lost to another rig's concurrent update before the next check.
ATTACH_TRIES = 5


def source_for(rig_id: str, site: str) -> StreamSource:
    return StreamSource(
        name=RIG_LOGS_STREAM,
        external=ExternalStream(api=rig_js_api(rig_id)),
        consumer=StreamConsumerSource(
            name=rig_source_consumer(site), deliver_subject=rig_source_subject(rig_id, site)
        ),
    )


def _is_ours(src: StreamSource, rig_id: str) -> bool:
    return src.name == RIG_LOGS_STREAM and src.external is not None and src.external.api == rig_js_api(rig_id)


def _same(a: StreamSource, b: StreamSource) -> bool:
    return (
        a.consumer is not None
        and b.consumer is not None
        and a.consumer.name == b.consumer.name
        and a.consumer.deliver_subject == b.consumer.deliver_subject
    )


async def ensure_consumer(leaf_js: JetStreamContext, rig_id: str, site: str) -> bool:
    """One sourcing consumer on the rig, ``site``'s; True when it had to be (re)created."""
    want = rig_source_consumer(site)
    present = False
    for info in await leaf_js.consumers_info(RIG_LOGS_STREAM):
        name = info.name
        if name == want and info.config.deliver_subject == rig_source_subject(rig_id, site):
            present = True
        elif name.startswith(CONSUMER_PREFIX) or name == want:
            # Another site's: a work queue allows one consumer, and that site must stop receiving.
            log.warning("rig logs: stopping the delivery to %s", name)
            with contextlib.suppress(NotFoundError):
                await leaf_js.delete_consumer(RIG_LOGS_STREAM, name)
    if present:
        return False
    await leaf_js.add_consumer(
        RIG_LOGS_STREAM,
        ConsumerConfig(
            name=want,
            durable_name=want,
            description=f"the site {site} sources the rig's logs through this consumer",
            ack_policy=AckPolicy.FLOW_CONTROL,
            flow_control=True,
            idle_heartbeat=SOURCE_HEARTBEAT_S,
            max_deliver=-1,
            max_ack_pending=SOURCE_ACK_PENDING,
            deliver_subject=rig_source_subject(rig_id, site),
        ),
    )
    return True


async def ensure_source(site_js: JetStreamContext, rig_id: str, site: str, *, renew: bool = False) -> bool:
    """The site's LOGS stream sources the rig; True when its config had to be written.

    ``renew`` takes the source out and puts it back: the site then sets it up at once
    instead of waiting for its own retry (it resumes from its last stored batch).
    """
    want = source_for(rig_id, site)
    wrote = False
    if renew:
        info = await site_js.stream_info(LOGS_STREAM)
        info.config.sources = [s for s in info.config.sources or [] if not _is_ours(s, rig_id)]
        await site_js.update_stream(info.config)
    for _ in range(ATTACH_TRIES):
        info = await site_js.stream_info(LOGS_STREAM)
        sources = list(info.config.sources or [])
        ours = [s for s in sources if _is_ours(s, rig_id)]
        if len(ours) == 1 and _same(ours[0], want):
            return wrote
        info.config.sources = [s for s in sources if not _is_ours(s, rig_id)] + [want]
        await site_js.update_stream(info.config)
        wrote = True
        # Read back at once: another rig's write may have replaced ours in between.
    return wrote


async def source_state(site: SiteLink, rig_id: str) -> str | None:
    """The site's own view of this rig's source: its error, or None when it is healthy.

    Asked raw: the client's ``StreamSourceInfo`` drops ``external``, which tells one
    rig's source from another's (they share the stream name).
    """
    nc = site.nc
    if nc is None:  # its connection is being replaced (sites.py): as if it did not answer
        raise nats.errors.ConnectionClosedError
    reply = await nc.request(f"$JS.API.STREAM.INFO.{LOGS_STREAM}", b"", timeout=2)
    info = json.loads(reply.data)
    for src in info.get("sources") or []:
        if (src.get("external") or {}).get("api") == rig_js_api(rig_id):
            err = src.get("error")
            if err:
                return str(err.get("description") or err)
            # Nanoseconds since the site last heard from the rig's consumer; -1 before the first
            # message, and again when it sets the source up anew.
            quiet_s = int(src.get("active", -1)) / 1e9
            return SILENT if quiet_s < 0 or quiet_s > SILENT_LINK_S else None
    return "the site does not list the rig as a source"


class LogSourcing:
    """Keeps the site in use sourcing the rig's logs; counts the batches still on the rig."""

    def __init__(
        self,
        leaf_js: JetStreamContext,
        settings: RigSettings,
        sites: SitePicker,
        on_stuck: Callable[[str, str], None] | None = None,
    ) -> None:
        self.leaf_js = leaf_js
        self.settings = settings
        self.sites = sites
        self.on_stuck = on_stuck  # (site name, error): the site is up but does not take the logs
        self.wake = asyncio.Event()
        self.caught_up = asyncio.Event()  # every batch is stored at a site (acknowledged)
        self.waiting = 0
        self.forwarded = 0  # batches the sites have taken since the rig's stream began
        self.attached: str | None = None  # the site whose source is wired and checked
        self.error: str | None = None
        self.stuck = False  # a trouble that lasts: the logs cannot move to the site in use
        self._checked_at = 0.0
        self._checked_site: str | None = None
        self._trouble_since: float | None = None
        self._renewed_at = 0.0
        self._told: str | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.refresh_waiting()
            except (nats.errors.Error, TimeoutError) as exc:
                # The rig's own server is restarting: `rig up` notices if it is gone for good.
                log.warning("rig logs: the rig's server did not answer (%s)", exc)
            site = self.sites.current
            if site is not None and self._due(site):
                await self._attach(site)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), REFRESH_S)

    def _due(self, site: SiteLink) -> bool:
        if site.config.name != self._checked_site:
            return True
        return time.monotonic() - self._checked_at >= self.settings.probe_interval_s

    async def _attach(self, site: SiteLink) -> None:
        name = site.config.name
        js = site.js  # taken once: sites.py may replace the site's connection while this awaits
        if js is None:
            return
        state: str | None
        # A source silent for long while batches wait although the site answers: the site
        # may be waiting on a retry of its own that does not come (seen under heavy load
        # after restarts); set it up anew, once per grace period.
        now = time.monotonic()
        renew = (
            self.error is not None
            and self._trouble_since is not None
            and now - self._trouble_since >= LINK_GRACE_S
            and now - self._renewed_at >= LINK_GRACE_S
        )
        if renew:
            log.warning(
                "rig logs: the source at %s has been silent (%s); setting it up anew", name, self.error
            )
            self._renewed_at = now
        try:
            if await ensure_source(js, self.settings.rig_id, name, renew=renew):
                log.info("rig logs: wrote the source at %s", name)
            if await ensure_consumer(self.leaf_js, self.settings.rig_id, name):
                log.warning("rig logs: the site %s now sources them", name)
            state = await source_state(site, self.settings.rig_id)
        except (nats.errors.Error, TimeoutError) as exc:
            state = f"{exc or type(exc).__name__}"
            log.info("rig logs: wiring the source at %s failed: %s", name, state)
        else:
            self._checked_site, self._checked_at = name, time.monotonic()
            self.attached = name
        now = time.monotonic()
        if state is None or not self.waiting:
            self._trouble_since = None
        elif self._trouble_since is None:
            self._trouble_since = now
        # Every trouble gets the grace: right after a hub restart the first checks fail or find
        # the source not yet running, and uploads must not overtake the logs for that alone.
        lasting = self._trouble_since is not None and now - self._trouble_since >= LINK_GRACE_S
        # Told once per distinct trouble, and only while something waits for it.
        if lasting and state != self._told and self.on_stuck is not None:
            assert state is not None
            self.on_stuck(name, f"{state} for {LINK_GRACE_S:.0f} s")
            self._told = state
        if state is None:
            self._told = None
        self.error = state
        self.stuck = lasting

    async def refresh_waiting(self) -> int:
        info = await self.leaf_js.stream_info(RIG_LOGS_STREAM)
        self.waiting = int(info.state.messages)
        self.forwarded = max(0, int(info.state.last_seq) - self.waiting)
        # Acknowledged, not merely sent: a batch delivered while the site was not listening
        # yet is sent again, and the uploads must not go before it.
        if self.waiting == 0:
            self.caught_up.set()
        else:
            self.caught_up.clear()
        return self.waiting
