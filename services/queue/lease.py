"""The queue's leadership lease: the shared lease (``libs/lease.py``) on the ``queue-leader`` bucket."""

from __future__ import annotations

from foto3d.libs.bus.connection import Bus
from foto3d.libs.lease import KEY, LeaseHolder, Transition
from foto3d.libs.lease import LeaderLease as _Lease
from foto3d.services.queue.topology import LEADER_LEASE

__all__ = ["KEY", "LeaderLease", "LeaseHolder", "lease_ttl"]


def lease_ttl() -> float:
    return LEADER_LEASE.ttl


class LeaderLease(_Lease):
    def __init__(self, bus: Bus, holder: LeaseHolder, renew_s: float, on_change: Transition) -> None:
        super().__init__(bus, LEADER_LEASE, holder, renew_s, on_change)
