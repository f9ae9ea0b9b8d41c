"""The ``logging.Handler`` that hands records to a :class:`LogShipper`, and ``attach``.

Two lines give a script real-time logs::

    from foto3d.libs import logsdk
    logsdk.attach(source="train-chair")
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

from foto3d.libs.logsdk.crash import install_crash_hooks
from foto3d.libs.logsdk.shipper import LogShipper

_formatter = logging.Formatter()


class NatsLogHandler(logging.Handler):
    """Ships every record it handles; costs the caller one queue append.

    The message is formatted once (``record.getMessage()``); the exception text
    (with traceback) only when the record carries one. ``extra={"job_id": ...,
    "object_id": ...}`` overrides the shipper's ids for one record.
    """

    def __init__(self, shipper: LogShipper, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.shipper = shipper

    def handle(self, record: logging.LogRecord) -> bool:
        """Like ``Handler.handle`` but without the handler lock: ``emit`` is thread-safe.

        The lock would also let ``logging.shutdown`` (which holds it while flushing)
        block the shipper's own thread when that thread logs, e.g. a reconnect.
        """
        rv = self.filter(record)
        if rv:
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc: str | None = None
            if record.exc_info:
                exc = record.exc_text or _formatter.formatException(record.exc_info)
            elif record.exc_text:
                exc = record.exc_text
            if record.stack_info:
                exc = f"{exc}\n{record.stack_info}" if exc else record.stack_info
            d = record.__dict__
            self.shipper.emit(
                record.levelno,
                record.getMessage(),
                logger=record.name,
                exc=exc,
                job_id=d.get("job_id"),
                object_id=d.get("object_id"),
                ts=record.created,
            )
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Ship what is queued; while NATS is down, spool it instead of waiting."""
        self.shipper.flush(10.0, wait_for_reconnect=False)

    def close(self) -> None:
        """Flush and stop the shipper (anything unsent stays in the spool)."""
        try:
            self.shipper.close()
        finally:
            super().close()


def attach(
    source: str = "script",
    *,
    kind: str = "script",
    level: int = logging.INFO,
    logger: logging.Logger | None = None,
    install_excepthook: bool = True,
    **shipper_kw: Any,
) -> NatsLogHandler:
    """Ship ``logger``'s records (the root logger by default) as source ``kind``/``source``.

    Lowers the logger's level to ``level`` if it is higher (the root logger
    starts at WARNING, which would hide ``logger.info``). With
    ``install_excepthook`` uncaught exceptions, SIGTERM and non-zero
    ``sys.exit`` are logged as CRITICAL before the process ends. Keyword
    arguments go to :class:`LogShipper` (``job_id``, ``nats_urls``, ``spool_dir``...).
    """
    shipper = LogShipper(kind, source, **shipper_kw)
    handler = NatsLogHandler(shipper, level=level)
    target = logger if logger is not None else logging.getLogger()
    target.addHandler(handler)
    if target.level == logging.NOTSET or target.level > level:
        target.setLevel(level)
    if install_excepthook:
        install_crash_hooks(shipper)
    atexit.register(_close_at_exit, handler, target)
    return handler


def _close_at_exit(handler: NatsLogHandler, target: logging.Logger) -> None:
    target.removeHandler(handler)
    handler.close()
