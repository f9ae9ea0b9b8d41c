"""Errors for the operator, in plain language, each with what to do about it.

The operator is at the rig, maybe in a car, and can re-shoot only while the object is
still there: an error must say at once what happened and what to do, without a log
viewer. Problems come from the rig's own log records (ERROR and above) and from the
agent (uplink, uploads, datasets).
"""

from __future__ import annotations

import time
from collections import deque

from foto3d.proto.logs import LogBatch, LogRecord
from foto3d.proto.rig import RigProblem

MAX_PROBLEMS = 100
# A problem quotes at most this many lines of the step's own output, each at most this long.
DETAIL_LINES = 5
DETAIL_CHARS = 300


def detail_lines(exc: str | None) -> list[str]:
    """The last few non-empty lines of a record's ``exc`` (a command's stderr, a traceback)."""
    if not exc:
        return []
    lines = [line.rstrip() for line in exc.splitlines() if line.strip()][-DETAIL_LINES:]
    return [line if len(line) <= DETAIL_CHARS else line[:DETAIL_CHARS] + " …" for line in lines]


def from_log_record(batch: LogBatch, record: LogRecord) -> RigProblem:
    obj = record.object_id or batch.object_id
    where = f" (object {obj})" if obj else ""
    action = (
        "Check the camera and the capture; if this object's photos are affected, re-shoot it now "
        "while it is still here."
        if obj
        else "Check the rig (camera, turntable, lights, disk) and retry the step that failed."
    )
    text = f"{record.message}{where}"
    if record.logger:
        text = f"{record.logger}: {text}"
    return RigProblem(
        ts=record.ts,
        text=text,
        action=action,
        source="log",
        object_id=obj,
        level=record.level,
        detail=detail_lines(record.exc),
    )


def offline(since: float, waiting: int) -> RigProblem:
    # No clock time in the text: the panel shows ``ts`` in the operator's locale, and a
    # time written here (the rig's format) would sit beside it in another one.
    return RigProblem(
        ts=since,
        text=f"No site reachable since then. {waiting} item(s) are kept safely on this rig.",
        action="Keep working: everything is sent by itself when the link returns. If it lasts, check "
        "the rig's network (cable, Wi-Fi, mobile modem).",
        level=30,
    )


def delivery_failing(what: str, site: str, error: str) -> RigProblem:
    return RigProblem(
        ts=time.time(),
        text=f"Sending {what} to site {site} keeps failing: {error}",
        action="Nothing is lost: it stays on the rig and is retried (or sent to the next site). If it "
        "lasts, ask the site's operator to check its NATS streams (`foto3d status` there).",
        level=30,
    )


def sourcing_failing(site: str, error: str) -> RigProblem:
    return RigProblem(
        ts=time.time(),
        text=f"Site {site} answers but does not take this rig's logs over the leaf link: {error}",
        action="Nothing is lost: the logs stay on the rig. Ask the site's operator to check that its "
        "nats-server listens for leaf nodes (port 7422 by default, `leafnode_port`) and that this rig "
        "can reach that port.",
        level=30,
    )


def upload_failed(object_id: str, error: str, retry_s: float) -> RigProblem:
    return RigProblem(
        ts=time.time(),
        text=f"Uploading the photos of {object_id} failed: {error}",
        action=f"Nothing is lost; it is retried in {retry_s:.0f} s and resumes where it stopped. If it "
        "keeps failing, check the site's storage settings (`foto3d rig status`).",
        object_id=object_id,
    )


def dataset_unusable(object_id: str, error: str) -> RigProblem:
    return RigProblem(
        ts=time.time(),
        text=f"The photos of {object_id} cannot be sent: {error}",
        action="Re-shoot the object (or restore the folder) and submit it again; this submission was "
        "set aside so the ones after it can go.",
        object_id=object_id,
    )


def submit_refused(object_id: str, error: str) -> RigProblem:
    return RigProblem(
        ts=time.time(),
        text=f"The site refused the submission of {object_id}: {error}",
        action="Ask the site's operator; the photos are uploaded, the submission can be resent with "
        "`foto3d submit` once the site accepts it.",
        object_id=object_id,
    )


class ProblemLog:
    """The newest problems, newest first, bounded."""

    def __init__(self) -> None:
        self._items: deque[RigProblem] = deque(maxlen=MAX_PROBLEMS)

    def add(self, problem: RigProblem) -> None:
        self._items.appendleft(problem)

    def add_batch(self, batch: LogBatch) -> int:
        n = 0
        for record in batch.records:
            if record.level >= 40:
                self.add(from_log_record(batch, record))
                n += 1
        return n

    def items(self) -> list[RigProblem]:
        return list(self._items)
