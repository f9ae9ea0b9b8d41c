"""Classify a child process's output lines into log records.

Used by ``foto3d run`` and by the trainer (nerfstudio's output). Generic on purpose:

* colour codes (ANSI escapes) are removed;
* a line holding carriage returns (a progress bar redrawing itself) is reduced
  to its last non-empty segment, i.e. what the terminal finally showed;
  empty lines are skipped;
* a Python traceback, from ``Traceback (most recent call last):`` through its
  final ``SomeError: message`` line, becomes ONE record at ERROR whose message
  is the final line and whose ``exc`` is the whole traceback. A chained
  traceback ("During handling of the above exception...") becomes one such
  record per exception, the last one carrying the exception that ended the run;
* any other line gets a level from its text, first match wins:
  ERROR for ``ERROR``, ``FATAL``, ``CRITICAL``, ``Error:``/``XxxError:``,
  ``error:``, ``Exception``, ``CUDA out of memory``, ``Killed``,
  ``Segmentation fault``, ``panic:``, ``Aborted``;
  WARNING for ``warn``/``warning`` (any case) and ``XxxWarning``;
  DEBUG/INFO for a ``DEBUG``/``INFO`` token (Python logging writes those to stderr);
  INFO for progress bars; otherwise the stream's default: INFO for stdout,
  WARNING for stderr.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Literal

from foto3d.proto.logs import Level

Stream = Literal["stdout", "stderr"]

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_ERROR_RE = re.compile(
    r"\bERROR\b|\bFATAL\b|\bCRITICAL\b|\b[A-Za-z_]*Error:|\berror:|\bException\b"
    r"|CUDA out of memory|\bKilled\b|Segmentation fault|\bpanic:|\bAborted\b"
)
_WARNING_RE = re.compile(r"(?i:\bwarn(?:ing|ings)?\b)|\w+Warning\b")
_DEBUG_RE = re.compile(r"\bDEBUG\b")
_INFO_RE = re.compile(r"\bINFO\b")
_PROGRESS_RE = re.compile(r"\d+%\||\|\s*\d+/\d+\s*\[|\d+/\d+\s*\[\d")
TRACEBACK_START = "Traceback (most recent call last):"
_CHAIN_MARKERS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
# A traceback longer than this is shipped as it is (a runaway, not a traceback).
MAX_TRACEBACK_LINES = 2_000


def clean_line(line: str) -> str:
    """Strip the newline and colour codes; keep the last non-empty ``\\r`` segment."""
    line = line.rstrip("\r\n")
    if "\r" in line:
        segments = [s for s in line.split("\r") if s.strip()]
        line = segments[-1] if segments else ""
    if "\x1b" in line:
        line = _ANSI_RE.sub("", line)
    return line.rstrip()


@dataclass(frozen=True)
class ClassifiedLine:
    """One log record made from one line (or from a whole traceback)."""

    level: int
    message: str
    stream: Stream
    ts: float
    exc: str | None = None


@dataclass
class _StreamState:
    traceback: list[str] | None = None
    traceback_ts: float = 0.0
    after_traceback: bool = False


@dataclass
class LineClassifier:
    """Stateful per stream (a traceback spans many lines); one instance per process."""

    stdout_level: int = int(Level.INFO)
    stderr_level: int = int(Level.WARNING)
    _state: dict[str, _StreamState] = field(default_factory=dict)

    def classify(self, line: str, stream: Stream) -> int:
        """The level of one line on its own (no traceback grouping)."""
        progress = "\r" in line.rstrip("\r\n")
        text = clean_line(line)
        if _ERROR_RE.search(text):
            return int(Level.ERROR)
        if _WARNING_RE.search(text):
            return int(Level.WARNING)
        if _DEBUG_RE.search(text):
            return int(Level.DEBUG)
        if _INFO_RE.search(text) or progress or _PROGRESS_RE.search(text):
            return int(Level.INFO)
        return self.stdout_level if stream == "stdout" else self.stderr_level

    def feed(self, line: str, stream: Stream, ts: float | None = None) -> list[ClassifiedLine]:
        """Take one line; return the records it completes (none while inside a traceback)."""
        now = time.time() if ts is None else ts
        st = self._state.setdefault(stream, _StreamState())
        text = clean_line(line)
        if not text:
            return []  # blank lines also separate chained tracebacks: keep the state
        if st.traceback is not None:
            if text.startswith((" ", "\t", TRACEBACK_START)) or text in _CHAIN_MARKERS:
                st.traceback.append(text)
                if len(st.traceback) >= MAX_TRACEBACK_LINES:
                    return self._end_traceback(st, stream, st.traceback[-1])
                return []
            st.traceback.append(text)
            return self._end_traceback(st, stream, text)
        if text.startswith(TRACEBACK_START) or (st.after_traceback and text in _CHAIN_MARKERS):
            st.traceback = [text]
            st.traceback_ts = now
            return []
        st.after_traceback = False
        return [ClassifiedLine(self.classify(line, stream), text, stream, now)]

    def flush(self, stream: Stream | None = None) -> list[ClassifiedLine]:
        """End of output: a traceback still open becomes a record as it is."""
        out: list[ClassifiedLine] = []
        streams: list[Stream] = [stream] if stream else ["stdout", "stderr"]
        for s in streams:
            st = self._state.get(s)
            if st is not None and st.traceback:
                out += self._end_traceback(st, s, st.traceback[-1])
        return out

    def _end_traceback(self, st: _StreamState, stream: Stream, message: str) -> list[ClassifiedLine]:
        assert st.traceback is not None
        rec = ClassifiedLine(int(Level.ERROR), message, stream, st.traceback_ts, "\n".join(st.traceback))
        st.traceback = None
        st.after_traceback = True
        return [rec]
