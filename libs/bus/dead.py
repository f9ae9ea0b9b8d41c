"""Dead letters: a message that cannot be processed is kept on ``f3d.dead.<origin>`` with why.

The one way every consumer gives up on a message (a poison event, a malformed work item, a job
out of attempts): the payload as it came, with the reason and where it came from in the
``F3D-*`` headers named in ``proto/subjects.py``, so ``nats stream view DEAD`` tells the story
and the notifier can raise an alert. The letter's ``Nats-Msg-Id`` is its origin's sequence (or
the job's attempt), so a consumer that gives up twice on one message keeps one letter.
"""

from __future__ import annotations

import contextlib
import logging

import msgspec
import nats.errors
from nats.aio.msg import Msg

from foto3d.libs.bus.connection import Bus
from foto3d.proto import subjects

log = logging.getLogger(__name__)

MAX_REASON = 1000


async def publish_dead_letter(
    bus: Bus,
    origin: str,
    payload: bytes,
    *,
    reason: str,
    original_subject: str,
    msg_id: str,
    consumer: str = "",
    job_id: str = "",
    deadline: float | None = None,
) -> None:
    """Keep ``payload`` on the dead-letter subject of ``origin`` (a stream name, or ``work``).

    A payload the stream refuses (too large) is replaced by a stub saying what it was, so the
    reason is kept either way. ``deadline=None`` retries the publish until it is stored.
    """
    headers = {
        subjects.DEAD_REASON: reason[:MAX_REASON],
        subjects.DEAD_ORIGINAL_SUBJECT: original_subject,
        "Nats-Msg-Id": msg_id,
    }
    if consumer:
        headers[subjects.DEAD_CONSUMER] = consumer
    if job_id:
        headers[subjects.DEAD_JOB_ID] = job_id
    subject = subjects.dead(origin)
    try:
        await bus.publisher.publish_bytes(subject, payload, headers=headers, deadline=deadline)
    except Exception:
        stub = msgspec.json.encode({"reason": reason, "bytes": len(payload), "subject": original_subject})
        await bus.publisher.publish_bytes(subject, stub, headers=headers, deadline=deadline)


async def dead_letter_message(
    bus: Bus, msg: Msg, reason: str, *, consumer: str, origin: str, deadline: float | None = None
) -> None:
    """Keep a JetStream message that cannot be processed, with why, then stop its redelivery.

    ``consumer`` is the name the letter records; ``origin`` the stream when the message's
    metadata does not say. If the letter cannot be stored this raises before terminating, so
    the message is delivered again rather than lost.
    """
    meta = msg.metadata
    await publish_dead_letter(
        bus,
        meta.stream or origin,
        msg.data,
        reason=reason,
        original_subject=msg.subject,
        msg_id=f"{meta.stream}:{meta.sequence.stream}",
        consumer=consumer,
        deadline=deadline,
    )
    log.warning("%s: dead-lettered message %s on %s: %s", consumer, meta.sequence.stream, msg.subject, reason)
    with contextlib.suppress(nats.errors.Error):
        await msg.term()
