"""A stranger's malformed request is a WARNING, not an ERROR, on any of our HTTP listeners.

aiohttp logs a request it cannot parse (a header line too long, a method it does not know,
bytes that are not HTTP) with ``logger.exception``, an ERROR, though the fault is the client's
and aiohttp answers it with a 4xx by itself. ERROR records page staff, so on a listener anyone
can reach that would let anyone raise alerts at will. Give each listener's ``AppRunner`` the
logger from :func:`server_logger`: those records become WARNINGs there, and anything else
aiohttp logs (a handler that fails, a response it cannot send) keeps its level.
"""

from __future__ import annotations

import logging
from types import TracebackType

from aiohttp.http_exceptions import HttpProcessingError


class ClientFaultsAreWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if (
            isinstance(exc, HttpProcessingError)
            and 400 <= (exc.code or 0) < 500
            and not _raised_in_a_handler(exc.__traceback__)
        ):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _raised_in_a_handler(tb: TracebackType | None) -> bool:
    """Whether the exception left a request handler (aiohttp then answers 500: our fault, an
    ERROR) rather than the server's own parser (a 4xx, the client's fault)."""
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_handle_request":
            return True
        tb = tb.tb_next
    return False


def server_logger(name: str) -> logging.Logger:
    """The logger for a listener's HTTP server (``AppRunner(app, logger=…)``), filtered as above."""
    log = logging.getLogger(name)
    if not any(isinstance(f, ClientFaultsAreWarnings) for f in log.filters):
        log.addFilter(ClientFaultsAreWarnings())
    return log
