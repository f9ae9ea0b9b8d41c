"""What the catalog's handlers share: built once by the service, handed to every route and endpoint.

The JSON API, the staff pages, the review routes, the capture notes and the CLI's bus
endpoints all read and change the same object records; this is the whole of what they
may use, so none of them needs (or can reach) the service object.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec

from foto3d.libs.auth import Auth
from foto3d.proto.objects import Board, ObjectDetails
from foto3d.services.catalog.actions import Catalog
from foto3d.services.catalog.note_actions import CaptureNotes
from foto3d.services.catalog.store import CatalogStore
from foto3d.services.catalog.writes import WriteRoute


@dataclass(frozen=True)
class CatalogParts:
    """The collaborators of the catalog's handlers.

    Invariants:

    - Built once per ``start()``, after the store is open and (on a new database) rebuilt
      from the bus, so the first request reads what is true now. Frozen: no field is
      replaced while the service runs.
    - One sqlite projection behind everything: ``catalog.store`` is ``store``, and ``notes``
      writes through ``catalog``. Reads go to ``store``; every change goes through
      ``catalog`` (or ``notes``), which publishes it as an event, then records it.
    - Handlers never open or close anything here. The service closes the store in
      ``stop()``; the runtime stops the HTTP listener and the bus endpoints before it stops
      a service, so no handler meets a closed store.
    - ``auth`` answers who is signed in; a change made over HTTP names that person as its
      actor.
    - ``stuck_after_s`` (seconds per stage before an object counts as stuck) is the
      settings' value at start.
    - ``writes`` runs the write commands where the writer lease is (here, or forwarded to
      the leader): the HTTP API's changes go through it, as the bus endpoints' do.
    """

    store: CatalogStore
    catalog: Catalog
    notes: CaptureNotes
    auth: Auth
    stuck_after_s: dict[str, float]
    writes: WriteRoute

    async def details(self, object_id: str) -> ObjectDetails:
        """An object with its jobs and publications (``ActionError`` when there is no such object)."""
        row = await self.catalog.obj(object_id)
        return ObjectDetails(
            **msgspec.structs.asdict(row),
            jobs=await self.store.jobs(object_id),
            publications=await self.store.publications(object_id),
        )

    async def board(self) -> Board:
        """How many objects are in each stage, and those stuck in one for too long."""
        now = time.time()
        stuck = await self.store.stuck(self.stuck_after_s, now)
        return Board(counts=await self.store.stage_counts(), stuck=stuck, now=now)
