"""A service process's own WARNING and ERROR records, shipped to the log server like a script's.

``foto3d up`` and ``foto3d serve`` attach one :class:`NatsLogHandler` to the root logger
(source kind ``service``), so "queue: leader command failed" is searchable and mailed, not
only printed on a console nobody reads.

No feedback loops. A record must not be able to cause the next one:

* records logged by the SDK itself (``foto3d.logsdk``) or on the shipper's own thread (the
  NATS client it runs reconnecting) are not shipped: a shipping problem would otherwise
  queue one more record per attempt;
* records logged while a *quiet* service runs are not shipped. The runtime starts each
  service inside :func:`service_context`; every task the service creates (its consumers,
  subscriptions, timers) inherits that context. The log collector is quiet: if its store
  fails, a record about the failure would go to the very stream it cannot store, and
  come back as one more failure. Its records stay on stderr and in ``/healthz``;
* tasks started inside :func:`not_shipped` (the notifier's consumer of the log stream) ship
  nothing either: a batch that fails is retried, and each retry's warning would be one more
  batch to fail;
* records that the code already shipped through a shipper of its own carry
  ``extra=ALREADY_SHIPPED`` and are not sent twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path

from foto3d.libs.logsdk.handler import NatsLogHandler
from foto3d.libs.logsdk.shipper import SDK_LOGGER, LogShipper, safe_source_id

SOURCE_KIND = "service"
SHIPPED_ATTR = "f3d_shipped"
ALREADY_SHIPPED = {SHIPPED_ATTR: True}

# Which service's code is running (set around its start; inherited by the tasks it creates).
_current_service: ContextVar[str | None] = ContextVar("f3d_service", default=None)
# Code that handles log records itself (a consumer of the log stream) ships none of its own.
_not_shipped: ContextVar[bool] = ContextVar("f3d_not_shipped", default=False)


@contextlib.contextmanager
def not_shipped() -> Iterator[None]:
    """Tasks created inside are never shipped: for consumers of the log stream, whose
    every failure (and retry) would otherwise add one more record to what they consume."""
    token = _not_shipped.set(True)
    try:
        yield
    finally:
        _not_shipped.reset(token)


@contextlib.contextmanager
def service_context(name: str) -> Iterator[None]:
    token = _current_service.set(name)
    try:
        yield
    finally:
        _current_service.reset(token)


def current_service() -> str | None:
    return _current_service.get()


class ServiceLogFilter(logging.Filter):
    def __init__(self, shipper: LogShipper, quiet_services: frozenset[str]) -> None:
        super().__init__()
        self.shipper = shipper
        self.quiet = quiet_services

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == SDK_LOGGER or record.name.startswith(SDK_LOGGER + "."):
            return False
        if record.__dict__.get(SHIPPED_ATTR):
            return False
        if record.thread is not None and record.thread == self.shipper.thread_ident:
            return False
        if _not_shipped.get():
            return False
        service = _current_service.get()
        return service is None or service not in self.quiet


class ServiceLogs:
    """The handler on the root logger, and its removal when the runtime stops."""

    def __init__(
        self,
        source: str,
        nats_urls: list[str],
        data_dir: Path,
        quiet_services: frozenset[str] = frozenset(),
        level: int = logging.WARNING,
    ) -> None:
        self.shipper = LogShipper(
            SOURCE_KIND,
            safe_source_id(source),
            nats_urls=nats_urls,
            data_dir=data_dir,
            heartbeat=False,  # the runtime beats for its services already
        )
        self.handler = NatsLogHandler(self.shipper, level=level)
        self.handler.addFilter(ServiceLogFilter(self.shipper, quiet_services))
        self.root = logging.getLogger()
        self.root.addHandler(self.handler)
        if self.root.level == logging.NOTSET or self.root.level > level:
            self.root.setLevel(level)

    def close(self, timeout: float = 5.0) -> None:
        self.root.removeHandler(self.handler)
        self.shipper.close(timeout)
