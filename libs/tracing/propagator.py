"""W3C trace context in NATS message headers."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()


def inject(headers: dict[str, str], ctx: otel_context.Context | None = None) -> dict[str, str]:
    """Add ``traceparent`` (and ``tracestate``) for the current or given context."""
    _propagator.inject(headers, context=ctx)
    return headers


def extract(headers: Mapping[str, str] | None) -> otel_context.Context:
    """The remote parent context carried by a message, or an empty context."""
    return _propagator.extract(dict(headers or {}))


def traceparent(ctx: otel_context.Context | None = None) -> str | None:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=ctx)
    return carrier.get("traceparent")
