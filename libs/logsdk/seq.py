"""Sequence numbers that identify a record exactly once per source.

The collector dedupes on ``(source_kind, source_id, seq)``, so a source whose id
is fixed (a rig, a named training script) must never reuse a number, not even
after a restart. The counter is persisted by reserving whole blocks: the file
holds the first number *not yet* handed out, so one fsync covers a block of
records, and a crash only leaves an unused gap (gaps are harmless; reuse is not).
A file lock makes two processes that share a source id take disjoint blocks.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

DEFAULT_BLOCK = 65_536


class SeqCounter:
    """Hands out strictly increasing numbers; persisted in ``path`` when given.

    Without a path the counter starts at the current time in microseconds, which
    keeps numbers increasing across restarts of an id that is reused only rarely
    (``foto3d run``'s default ids contain the pid) without any file.
    """

    def __init__(self, path: Path | None, block: int = DEFAULT_BLOCK) -> None:
        self.path = path
        self.block = block
        if path is None:
            self._next = time.time_ns() // 1000
            self._limit = -1  # never reserve
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._next = 0
            self._limit = 0
            self._reserve()

    def next(self) -> int:
        if self._limit >= 0 and self._next >= self._limit:
            self._reserve()
        n = self._next
        self._next += 1
        return n

    def peek(self) -> int:
        """The next number in the current block (for stats; never touches the disk)."""
        return self._next

    def _reserve(self) -> None:
        try:
            self._reserve_in_file()
        except OSError:
            # The disk is full (or read-only): numbers from the clock are still increasing
            # and unique, and the file takes over again above them once it can be written.
            self._next = max(self._next, time.time_ns() // 1000)
            self._limit = self._next + self.block

    def _reserve_in_file(self) -> None:
        assert self.path is not None
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                start = int(self.path.read_text().strip() or 0)
            except FileNotFoundError:
                start = 0
            except ValueError:
                # A torn file cannot happen with the atomic rename below; if the file was
                # edited by hand, start past anything a clock-based counter handed out.
                start = time.time_ns() // 1000
            start = max(start, self._next)
            limit = start + self.block
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            with open(tmp, "w") as f:
                f.write(f"{limit}\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        self._next = start
        self._limit = limit


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
