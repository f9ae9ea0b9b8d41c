"""Read nerfstudio's training progress from its terminal output.

nerfstudio 1.1.5's ``LocalWriter`` prints a header such as::

    Step (% Done)       Train Iter (time)    ETA (time)           Train Rays / Sec

and then one row per ``--logging.steps-per-log`` steps::

    2900 (9.67%)        25.874 ms            12 m, 3 s            81.64 K

The first column is 20 characters wide and every other one 20 plus a space,
so a row is cut at the header's column offsets. With the default
``max-log-size`` the writer redraws its table with ANSI cursor moves; escape
sequences and carriage returns are stripped first, and a redrawn older row is
ignored because progress only moves forward.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ROW = re.compile(r"^\s*(\d+) \((\d+(?:\.\d+)?)%\)")
_TIME_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s|ms)\b")
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
HEADER_FIRST = "Step (% Done)"
ETA_COLUMN = "ETA (time)"
ITER_COLUMN = "Train Iter (time)"


def strip_ansi(line: str) -> str:
    """The visible text of a terminal line (escapes removed, last carriage-return segment)."""
    text = _ANSI.sub("", line)
    if "\r" in text:
        parts = [p for p in text.split("\r") if p.strip()]
        text = parts[-1] if parts else ""
    return text.rstrip()


def parse_duration(text: str) -> float | None:
    """nerfstudio's ``_format_time`` output ('1 h, 2 m, 3 s', '3 s, 120.000 ms') in seconds."""
    parts = _TIME_PART.findall(text)
    if not parts:
        return None
    return sum(float(num) * _UNIT_S[unit] for num, unit in parts)


@dataclass(frozen=True)
class TrainProgress:
    step: int
    total: int
    eta_s: float | None = None
    iter_s: float | None = None


class ProgressParser:
    """Feed it every output line of ``ns-train``; it returns progress when a line carries some."""

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self._columns: dict[str, int] = {}
        self.last: TrainProgress | None = None
        self._clock = clock
        self._first: tuple[float, int] | None = None

    @staticmethod
    def is_row(line: str) -> bool:
        """A row of the progress table: it becomes the job's progress, not a log record."""
        return bool(_ROW.match(strip_ansi(line)))

    def feed(self, line: str) -> TrainProgress | None:
        text = strip_ansi(line)
        if text.startswith(HEADER_FIRST):
            self._columns = self._header_columns(text)
            return None
        m = _ROW.match(text)
        if not m:
            return None
        step = int(m.group(1))
        if self.last is not None and step <= self.last.step:
            return None  # a redraw of an older row
        total = self.total
        fraction = float(m.group(2)) / 100.0
        if fraction > 0 and not total:
            total = round(step / fraction)
        eta = self._column_seconds(text, ETA_COLUMN)
        if eta is None:
            eta = self._own_eta(step, total)
        progress = TrainProgress(
            step=step, total=total, eta_s=eta, iter_s=self._column_seconds(text, ITER_COLUMN)
        )
        self.last = progress
        return progress

    def _own_eta(self, step: int, total: int) -> float | None:
        """Without an ETA column (header missed), estimate from the pace since the first row."""
        now = self._clock()
        if self._first is None:
            self._first = (now, step)
            return None
        t0, s0 = self._first
        if step <= s0 or not total:
            return None
        return round((now - t0) / (step - s0) * max(0, total - step), 1)

    @staticmethod
    def _header_columns(header: str) -> dict[str, int]:
        cols: dict[str, int] = {}
        for name in (ETA_COLUMN, ITER_COLUMN):
            idx = header.find(name)
            if idx >= 0:
                cols[name] = idx
        return cols

    def _column_seconds(self, text: str, name: str) -> float | None:
        start = self._columns.get(name)
        if start is None:
            return None
        cell = text[start : start + 21]
        return parse_duration(cell)


class Throttle:
    """Let a value through at most once per ``interval`` seconds (stage changes always pass)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._last = 0.0
        self._stage = ""

    def ready(self, stage: str, now: float | None = None) -> bool:
        t = time.monotonic() if now is None else now
        if stage != self._stage or t - self._last >= self.interval:
            self._stage = stage
            self._last = t
            return True
        return False
