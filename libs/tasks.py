"""Stopping background tasks for good.

Every service stops its loops the same way: cancel, then wait until each task has
really ended, so nothing keeps running against a closed store or connection. A
single cancel is not always enough on Python 3.11 (``asyncio.wait_for`` can swallow
a cancellation that arrives just as its inner future completes), so tasks are
cancelled again until they are done.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` (None entries are skipped) and return once all have ended.

    What a task raises while it ends is dropped: the caller is stopping it.
    """
    pending = {t for t in tasks if t is not None and not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        _done, pending = await asyncio.wait(pending, timeout=0.1)
    for task in tasks:
        if task is not None and task.done() and not task.cancelled():
            with contextlib.suppress(BaseException):
                task.exception()  # mark retrieved, so asyncio does not log it as never awaited
