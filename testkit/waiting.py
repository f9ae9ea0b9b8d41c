"""Waiting for something another process or thread does, where it offers no event to await."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def eventually(
    probe: Callable[[], Any], what: str = "condition", timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Call ``probe`` (sync or async) until it returns something truthy, and return that.

    Raises AssertionError naming ``what`` and the last value once ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)
