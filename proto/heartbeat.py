"""Heartbeats: every long-running participant says it is alive every few seconds."""

from __future__ import annotations

from typing import Annotated

import msgspec

from foto3d.proto.base import Count, Event, Real


class Progress(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    step: Count = 0
    total: Count = 0
    eta_s: Real | None = None
    stage: str = ""


class TakeOver(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The sender won a leadership lease from another holder (the queue's standby taking over)."""

    # When the sender won the lease (its own clock): with the sender's id, names the takeover.
    at: Real
    previous: str
    previous_host: str = ""
    previous_site: str | None = None


class Heartbeat(Event, frozen=True, kw_only=True, tag="heartbeat/1"):
    """Last-seen state of a service, trainer, rig or running job."""

    kind: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,32}$")]
    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.:@-]{1,128}$")]
    host: str
    version: str
    ts: Real
    interval_s: Real = 5.0
    # Alert when silent for longer than this; defaults to 3 x interval.
    grace_s: Real | None = None
    progress: Progress | None = None
    # Work the participant holds that nobody else has yet (e.g. a rig's spooled batches).
    pending: Count = 0
    # Set in the last heartbeat of a clean shutdown, so a planned stop is not an interruption.
    stopping: bool = False
    job_id: str | None = None
    object_id: str | None = None
    # Who this is across restarts when the id changes with each process (a service's name, the
    # queue, a trainer with a generated id): a newer beat of the same kind, host, lineage and
    # site replaces an older instance that went silent or stopped. None: the id itself is stable.
    lineage: str | None = None
    # When this instance began beating (sender's clock; compared only with beats from the same
    # host): an instance that was already running when another went silent did not replace it.
    started_at: Real | None = None
    # The site (data centre, cloud region) the sender runs at, from its `site` setting: the
    # notifier threads the silences of one site into one mail conversation.
    site: str | None = None
    # Set while the sender leads after taking a lease over from another holder: the notifier
    # mails the takeover in the thread of the previous holder's site.
    took_over: TakeOver | None = None
