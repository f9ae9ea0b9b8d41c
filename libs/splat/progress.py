"""A small progress bar on stderr for long reads and writes; silent unless stderr is a terminal."""

from __future__ import annotations

import sys
import time
from types import TracebackType

#: Below this many units (bytes or gaussians) no bar is drawn: the work is over in a blink.
MIN_TOTAL = 64 << 20


class Progress:
    """``with Progress(total, "reading") as bar: bar.update(n)``; redraws at most 10 times a second."""

    def __init__(self, total: int, label: str, unit: str = "B", *, enabled: bool | None = None) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.unit = unit
        self.done = 0
        if enabled is None:
            enabled = total >= MIN_TOTAL and sys.stderr.isatty()
        self.enabled = enabled
        self._last = 0.0
        self._start = time.monotonic()

    def __enter__(self) -> Progress:
        return self

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= 0.1 or self.done >= self.total:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        frac = min(self.done / self.total, 1.0)
        width = 30
        fill = int(frac * width)
        if self.unit == "B":
            amount = f"{self.done / 2**20:,.0f}/{self.total / 2**20:,.0f} MiB"
        else:
            amount = f"{self.done:,}/{self.total:,}"
        elapsed = time.monotonic() - self._start
        sys.stderr.write(
            f"\r{self.label}: [{'#' * fill}{'.' * (width - fill)}] {frac:4.0%} {amount} {elapsed:.1f}s"
        )
        sys.stderr.flush()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.enabled and self._last:
            sys.stderr.write("\n")
            sys.stderr.flush()
