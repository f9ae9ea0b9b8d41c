"""Typed JetStream publishing with deduplication and trace context.

Every message carries ``Nats-Msg-Id`` so a retry is stored once, and W3C
``traceparent`` so one trace follows a job across services. A publish that timed
out may still have been stored: it is retried with the same id until JetStream
acknowledges it or the deadline passes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import msgspec
import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError

from foto3d.libs.tracing.produce import publish_span

log = logging.getLogger(__name__)

_encoder = msgspec.json.Encoder()


class PublishError(RuntimeError):
    """JetStream did not acknowledge a message before the deadline."""


def new_msg_id() -> str:
    return uuid.uuid4().hex


RETRYABLE = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    NoStreamResponseError,
    asyncio.TimeoutError,
)


class Publisher:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def publish(
        self,
        subject: str,
        event: msgspec.Struct,
        *,
        msg_id: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
        deadline: float | None = 30.0,
    ) -> Any:
        return await self.publish_bytes(
            subject,
            _encoder.encode(event),
            msg_id=msg_id,
            headers=headers,
            timeout=timeout,
            deadline=deadline,
        )

    async def publish_bytes(
        self,
        subject: str,
        payload: bytes,
        *,
        msg_id: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
        deadline: float | None = 30.0,
    ) -> Any:
        """Publish and wait for the PubAck, retrying with the same ``Nats-Msg-Id``.

        ``deadline=None`` retries forever (for callers that must not lose data and
        have nowhere else to put it).
        """
        hdrs = dict(headers or {})
        hdrs.setdefault("Nats-Msg-Id", msg_id or new_msg_id())
        loop = asyncio.get_running_loop()
        end = None if deadline is None else loop.time() + deadline
        delay = 0.1
        with publish_span(subject, hdrs):
            while True:
                try:
                    return await self.js.publish(subject, payload, timeout=timeout, headers=hdrs)
                except RETRYABLE as exc:
                    if end is not None and loop.time() + delay > end:
                        raise PublishError(
                            f"no JetStream ack for {subject} after {deadline:.0f}s: {exc!r}"
                        ) from exc
                    log.debug("publish to %s not acknowledged (%r); retrying", subject, exc)
                except APIError as exc:
                    # e.g. a full WorkQueue stream with DiscardNew: the caller must decide.
                    raise PublishError(f"JetStream refused {subject}: {exc.description or exc}") from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
