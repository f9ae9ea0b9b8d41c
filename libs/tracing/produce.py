"""Spans around publishing, so each message is a child of the work that sent it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

from foto3d.libs.tracing.propagator import inject

_tracer = trace.get_tracer("foto3d.bus.produce")


@contextmanager
def publish_span(subject: str, headers: dict[str, str]) -> Iterator[trace.Span]:
    """Open a PRODUCER span for ``subject`` and write its context into ``headers``."""
    with _tracer.start_as_current_span(
        f"publish {subject.split('.', 2)[1] if subject.count('.') else subject}",
        kind=trace.SpanKind.PRODUCER,
        attributes={"messaging.system": "nats", "messaging.destination.name": subject},
    ) as span:
        inject(headers)
        yield span
