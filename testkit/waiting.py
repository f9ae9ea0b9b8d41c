"""Waiting for something another process or thread does, where it offers no event to await."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def eventually(
    probe: Callable[[], Any],
    what: str | Callable[[], str] = "condition",
    timeout: float = 20.0,
    interval: float = 0.05,
) -> Any:
    """Call ``probe`` (sync or async) until it returns something truthy, and return that.

    Raises AssertionError naming ``what`` and the last value once ``timeout`` passes. ``what``
    may be a function, called only then: a process's log read at the moment of failure says
    what went wrong, one read when the wait began does not.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {said}; last: {last!r}")
        await asyncio.sleep(interval)
