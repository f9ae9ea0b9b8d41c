"""What the notifier's dashboard pages and their JSON APIs use: built once by the service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from foto3d.libs.service import Health
from foto3d.services.notifier.store import Store
from foto3d.services.notifier.watch import HeartbeatWatch


@dataclass(frozen=True)
class NotifierParts:
    """The collaborators of the Status and Alerts pages and their JSON APIs.

    Invariants:

    - Built once per ``start()``, after the store is open and the heartbeat watch started.
      Frozen: no field is replaced while the service runs.
    - The pages only read: ``store`` (alerts and the outbox) and ``watch`` (who was heard
      from); alerts are raised, mailed and resolved by the service alone.
    - ``health`` is the service's own report, asked at request time (it changes with the
      sender, the lease and the watch).
    - ``mail`` says where alert mail goes (the SMTP server, or the local outbox folder); it is
      fixed by the settings at start.
    - Handlers open and close nothing here; the runtime stops the HTTP listener before it
      stops the service, so no handler meets a closed store.
    """

    store: Store
    watch: HeartbeatWatch
    health: Callable[[], Health]
    mail: str
