"""Jobs that wait while no trainer is alive: nobody would notice otherwise.

The queue's heartbeat carries how many jobs are queued (``pending``). When jobs wait and
no trainer beats, the scaler could not start one either (it would be beating within
seconds), so after ``no_trainer_wait`` seconds of that the notifier raises one alert;
it closes as soon as a trainer beats or nothing waits any more.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from foto3d.libs.heartbeat import Seen
from foto3d.services.notifier.model import AlertInfo, Occurrence

NO_TRAINER_FINGERPRINT = "queue:no-trainer"
_LIVING = ("alive", "late")


@dataclass
class Starvation:
    """When jobs began waiting with no trainer alive (None: they do not)."""

    since: float | None = None
    queued: int = 0

    def update(self, participants: Iterable[Seen], now: float) -> None:
        queued = 0
        trainer = False
        for s in participants:
            if s.state(now) not in _LIVING:
                continue
            if s.beat.kind == "queue":
                # Leader and standby report the same count: the largest is the queue's.
                queued = max(queued, s.beat.pending)
            elif s.beat.kind == "trainer":
                trainer = True
        self.queued = queued
        if queued and not trainer:
            self.since = now if self.since is None else self.since
        else:
            self.since = None

    def overdue(self, wait: float, now: float) -> bool:
        return self.since is not None and now - self.since >= wait


def no_trainer_occurrence(queued: int, since: float, wait: float) -> Occurrence:
    at = time.strftime("%H:%M:%S", time.gmtime(since))
    info = AlertInfo(
        kind="no_trainer",
        severity="error",
        title="jobs wait: no trainer is alive or can start here",
        what=(
            f"{queued} job(s) queued and no trainer is alive or can start here — waiting since {at} UTC "
            f"(alert after {wait:g} s). Start a trainer (foto3d up on a GPU host) or check the scaler."
        ),
        ts=time.time(),
        source_kind="queue",
    )
    return Occurrence(fingerprint=NO_TRAINER_FINGERPRINT, info=info)
