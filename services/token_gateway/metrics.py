"""The gateway's figures for /metrics: customer requests, latency, refusals, bytes and bans.

Counted from the same :class:`Access` record the access log gets, so the two always agree.
Requests without a known customer (refused before a credential was read) count under
``customer="none"``. Customers are a bounded, staff-managed set, so the label stays small.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from foto3d.services.token_gateway.abuse import BanList
from foto3d.services.token_gateway.accesslog import Access

NO_CUSTOMER = "none"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


MAX_REASON_CHARS = 48


def refusal_reason(a: Access) -> str:
    """The refusal's reason as a label: the code's own fixed wording, never the client's text."""
    return (a.reason or f"http {a.status}")[:MAX_REASON_CHARS].replace(" ", "_")


class GatewayMetrics(Collector):
    """Counters updated per request, plus the ban list read at scrape time."""

    def __init__(self, bans: BanList) -> None:
        self.bans = bans
        # A private registry only to build the children; the runtime's registry collects us.
        own = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "f3d_gateway_requests", "customer requests", ["customer", "code"], registry=own
        )
        self.latency = Histogram(
            "f3d_gateway_request_seconds",
            "time to answer a customer request",
            ["customer"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.refusals = Counter(
            "f3d_gateway_refusals", "requests refused, by reason", ["customer", "reason"], registry=own
        )
        self.bytes = Counter(
            "f3d_gateway_response_bytes", "bytes of files and links served", ["customer"], registry=own
        )
        self._own = own

    def observe(self, a: Access) -> None:
        customer = a.customer or NO_CUSTOMER
        self.requests.labels(customer, str(a.status)).inc()
        self.latency.labels(customer).observe(a.ms / 1000.0)
        if a.status >= 400:
            self.refusals.labels(customer, refusal_reason(a)).inc()
        if a.bytes:
            self.bytes.labels(customer).inc(a.bytes)

    def collect(self) -> Iterable[Metric]:
        yield from self._own.collect()
        now = time.time()
        bans = GaugeMetricFamily("f3d_gateway_bans_active", "client addresses banned right now")
        bans.add_metric([], sum(1 for until in list(self.bans.bans.values()) if until > now))
        yield bans
