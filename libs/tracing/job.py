"""Spans of one job's steps, all in the job's trace and all carrying the same attributes.

The job's trace starts where it is submitted (the queue's ``submit job`` span, a child of the
submitter's ``traceparent`` when the request carried one); the queue stores that span's
``traceparent`` with the job and copies it into every attempt's ``WorkItem``, so a trainer on
any site, on any attempt, continues the same trace. Attributes let a trace backend find
every span of an object or a job (``foto3d.object_id = ...``).

The steps past training (review, publish, a token, a model fetch: :func:`object_span`) join the
job's trace too, from the ``traceparent`` the catalog and the gateway keep with the object.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

from foto3d.libs.tracing.propagator import extract, traceparent

JOB_ID = "foto3d.job_id"
OBJECT_ID = "foto3d.object_id"
CUSTOMER = "foto3d.customer"
STEP = "foto3d.step"
ATTEMPT = "foto3d.attempt"

_tracer = trace.get_tracer("foto3d.jobs")


def job_attributes(
    job_id: str, object_id: str, step: str, attempt: int = 0, customer: str = ""
) -> dict[str, str | int]:
    attrs: dict[str, str | int] = {STEP: step}
    if object_id:
        attrs[OBJECT_ID] = object_id
    if job_id:
        attrs[JOB_ID] = job_id
    if attempt:
        attrs[ATTEMPT] = attempt
    if customer:
        attrs[CUSTOMER] = customer
    return attrs


@contextmanager
def job_span(
    name: str,
    *,
    job_id: str,
    object_id: str,
    step: str,
    attempt: int = 0,
    customer: str = "",
    traceparent: str | None = None,
) -> Iterator[trace.Span]:
    """A span for one step of a job; a child of ``traceparent`` when given, else of the current span."""
    context = extract({"traceparent": traceparent}) if traceparent else None
    with _tracer.start_as_current_span(
        name, context=context, attributes=job_attributes(job_id, object_id, step, attempt, customer)
    ) as span:
        yield span


@contextmanager
def object_span(
    name: str,
    *,
    object_id: str,
    step: str,
    customer: str = "",
    job_id: str = "",
    traceparent: str | None = None,
) -> Iterator[trace.Span]:
    """A span for a step of an object past training (review, publish, a token, a model fetch).

    The object's trace is its job's (``traceparent`` as the catalog and the gateway keep it
    with the object), so the steps after training join the trace that training is in; without
    one (an object not trained yet) it is a child of the current span.
    """
    with job_span(
        name, job_id=job_id, object_id=object_id, step=step, customer=customer, traceparent=traceparent
    ) as span:
        yield span


def current_traceparent() -> str | None:
    """The current span's W3C ``traceparent``; None outside any recording span."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    return traceparent()


def trace_id_of(traceparent: str | None) -> str:
    """The 32-hex trace id in a W3C ``traceparent`` (``00-<trace>-<span>-<flags>``); "" if none."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else ""
