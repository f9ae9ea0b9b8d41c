"""What the gateway knows about objects: owner, name, live status, latest published files.

Built from OBJECT_EVENTS alone (never by asking the catalog), read from the start at every
start and followed live, so a status change is in force here as soon as it is stored.
A model is served only when it has been published and its status is production, demo or
test. A first publication without any status event counts as production, as in the catalog
(which records that default without an event of its own).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import get_args

import msgspec

from foto3d.proto.base import DecodeError, decode, decoder
from foto3d.proto.jobs import SplatFormatName
from foto3d.proto.naming import NamingError, customer_of
from foto3d.proto.objects import (
    LiveStatus,
    ObjectEvent,
    ObjectPublished,
    ObjectRegistered,
    ObjectStatusChanged,
    PublishedFile,
)

log = logging.getLogger(__name__)

#: The splat formats a customer can be sent: the registry's names, one spelling each.
SPLAT_FORMATS: tuple[str, ...] = get_args(SplatFormatName)


@dataclass
class ObjectState:
    object_id: str
    customer: str
    name: str = ""
    status: LiveStatus | None = None
    version: int = 0
    files: list[PublishedFile] = field(default_factory=list)
    # The object's trace (the published version's, else the latest event's): a token for the
    # object and a fetch of its model are spans in it.
    traceparent: str | None = None

    @property
    def effective_status(self) -> LiveStatus:
        return self.status or LiveStatus.PRODUCTION

    @property
    def live(self) -> bool:
        return self.version > 0 and self.effective_status != LiveStatus.DISABLED

    def splats(self) -> list[PublishedFile]:
        return sorted(
            (f for f in self.files if f.kind == "splat" and f.format in SPLAT_FORMATS), key=lambda f: f.bytes
        )

    def file_named(self, version: int, name: str) -> PublishedFile | None:
        """The published file of the current version whose key ends in ``/v<version>/<name>``."""
        if version != self.version:
            return None
        suffix = f"/v{version}/{name}"
        return next((f for f in self.files if f.key.endswith(suffix)), None)

    def by_kind(self, kind: str) -> PublishedFile | None:
        return next((f for f in self.files if f.kind == kind), None)


class ObjectIndex:
    def __init__(self) -> None:
        self.objects: dict[str, ObjectState] = {}
        self._decoder = decoder(ObjectEvent)

    def get(self, object_id: str) -> ObjectState | None:
        return self.objects.get(object_id)

    def live_count(self) -> int:
        return sum(1 for o in self.objects.values() if o.live)

    async def apply(self, payload: bytes, _seq: int) -> None:
        try:
            ev = decode(self._decoder, payload)
        except DecodeError:
            # an event type this version does not know (a newer writer): not about serving
            tag = msgspec.json.decode(payload).get("type", "?") if payload.startswith(b"{") else "?"
            log.debug("object event %s ignored", tag)
            return
        self.apply_event(ev)

    def apply_event(self, ev: ObjectEvent) -> None:
        state = self.objects.get(ev.object_id)
        if state is None:
            try:
                owner = customer_of(ev.object_id)
            except NamingError:
                return
            state = self.objects[ev.object_id] = ObjectState(ev.object_id, owner)
        if ev.traceparent and (state.version == 0 or isinstance(ev, ObjectPublished)):
            state.traceparent = ev.traceparent
        if isinstance(ev, ObjectRegistered):
            state.customer = ev.customer
            state.name = ev.display_name
        elif isinstance(ev, ObjectStatusChanged):
            state.status = ev.status
        elif isinstance(ev, ObjectPublished) and (ev.version >= state.version or ev.rollback_from):
            state.version = ev.version
            state.files = list(ev.files)
