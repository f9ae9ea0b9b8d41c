"""Spans around handling a message, parented on the trace the message carries."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace

from foto3d.libs.tracing.propagator import extract

_tracer = trace.get_tracer("foto3d.bus.consume")


@contextmanager
def consume_span(subject: str, headers: Mapping[str, str] | None, name: str = "") -> Iterator[trace.Span]:
    with _tracer.start_as_current_span(
        name or f"process {subject}",
        context=extract(headers),
        kind=trace.SpanKind.CONSUMER,
        attributes={"messaging.system": "nats", "messaging.destination.name": subject},
    ) as span:
        yield span
