"""The on-disk spool: log batches that JetStream has not acknowledged yet.

One file per batch, holding exactly the bytes that are published, named

    <kind>+<source id>+<first seq>+<last seq>+<records>+<batch id>.batch

so the subject, the replay order (by first seq, zero-padded) and the
``Nats-Msg-Id`` (the batch id) are all known without opening the file, and a
replay publishes the identical message again (JetStream drops it if the first
attempt was stored after all). ``+`` cannot occur in a source kind or id.

Crash safety: a batch is written to a temporary name, fsynced, renamed into
place and the directory fsynced; a half-written file is never replayed.

Several shippers on one host may share the folder: each replays every file it
finds (a dead process's batches included); two replaying the same file publish
it twice with the same id, which JetStream dedupes.

The size cap drops the *oldest* batches first (of the writing source first):
the newest records describe the state the system is in now, which is what an
operator needs once the link is back; the loss is reported with its seq range.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".batch"
# Space kept free in the spool folder (a ballast file) so that a process ending on a full
# disk can still write the one record saying how many records it lost.
RESERVE_NAME = "reserve"
RESERVE_BYTES = 64 * 1024
# A temporary file older than this was left by a crash; a younger one may be a live
# shipper's write in progress (several processes share the folder).
STALE_TMP_S = 60.0


def spool_dir_for(data_dir: Path) -> Path:
    """Where the shippers of a host keep their spool: ``FOTO3D_LOG_SPOOL`` or ``<data>/log-spool``."""
    return Path(os.environ.get("FOTO3D_LOG_SPOOL") or data_dir / "log-spool").expanduser()


@dataclass(frozen=True)
class SpoolEntry:
    path: Path
    source_kind: str
    source_id: str
    first_seq: int
    last_seq: int
    records: int
    batch_id: str
    size: int

    @classmethod
    def parse(cls, path: Path, size: int) -> SpoolEntry | None:
        parts = path.name[: -len(SUFFIX)].split("+")
        if len(parts) != 6:
            return None
        kind, sid, first, last, count, batch_id = parts
        try:
            return cls(path, kind, sid, int(first), int(last), int(count), batch_id, size)
        except ValueError:
            return None

    @property
    def sort_key(self) -> tuple[str, str, int]:
        return (self.source_kind, self.source_id, self.first_seq)


@dataclass(frozen=True)
class Dropped:
    """Batches removed to stay under the cap."""

    batches: int
    records: int
    bytes: int
    seq_ranges: list[tuple[str, str, int, int]]


class Spool:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.dir = root / "batches"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        now = time.time()
        for stale in self.dir.glob("*.tmp"):
            # Left by a crash between write and rename: never acknowledged as spooled,
            # and the batch was still in that process's memory, so nothing to recover.
            with contextlib.suppress(FileNotFoundError):
                if now - stale.stat().st_mtime > STALE_TMP_S:
                    stale.unlink()
        # Running total, so a write does not rescan the folder; refreshed by every
        # full scan (other processes' writes are seen then).
        self._total = self.total_bytes()
        self.ensure_reserve()

    @property
    def reserve_path(self) -> Path:
        return self.dir.parent / RESERVE_NAME

    def ensure_reserve(self) -> None:
        """Create the ballast file if it is missing and the disk has room for it."""
        path = self.reserve_path
        if path.exists():
            return
        tmp = path.with_name(f"{RESERVE_NAME}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, b"\0" * RESERVE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def release_reserve(self) -> bool:
        """Free the ballast for a last small write; True if there was one."""
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            return False
        return True

    def entries(self) -> list[SpoolEntry]:
        """Every complete batch in replay order (per source by first seq)."""
        found: list[SpoolEntry] = []
        try:
            it = os.scandir(self.dir)
        except FileNotFoundError:
            return []
        with it:
            for de in it:
                if not de.name.endswith(SUFFIX):
                    continue
                try:
                    size = de.stat().st_size
                except FileNotFoundError:
                    continue  # replayed by another shipper meanwhile
                e = SpoolEntry.parse(Path(de.path), size)
                if e is not None:
                    found.append(e)
        found.sort(key=lambda e: e.sort_key)
        self._total = sum(e.size for e in found)
        return found

    def total_bytes(self) -> int:
        self.entries()
        return self._total

    def write(
        self,
        source_kind: str,
        source_id: str,
        first_seq: int,
        last_seq: int,
        records: int,
        batch_id: str,
        payload: bytes,
    ) -> Dropped | None:
        """Store one batch durably; drop the oldest batches first if over the cap."""
        dropped = self._make_room(source_kind, source_id, len(payload))
        name = f"{source_kind}+{source_id}+{first_seq:020d}+{last_seq:020d}+{records}+{batch_id}{SUFFIX}"
        final = self.dir / name
        tmp = self.dir / (name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        self._fsync_dir()
        self._total += len(payload)
        return dropped

    def read(self, entry: SpoolEntry) -> bytes | None:
        try:
            return entry.path.read_bytes()
        except FileNotFoundError:
            return None  # another shipper replayed it

    def remove(self, entry: SpoolEntry) -> None:
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()
            self._total = max(0, self._total - entry.size)

    def _make_room(self, kind: str, sid: str, incoming: int) -> Dropped | None:
        if self._total + incoming <= self.max_bytes:
            return None
        entries = self.entries()
        total = sum(e.size for e in entries)
        if total + incoming <= self.max_bytes:
            return None
        own = [e for e in entries if e.source_kind == kind and e.source_id == sid]
        others = sorted((e for e in entries if e not in own), key=_mtime)
        victims: list[SpoolEntry] = []
        for e in [*own, *others]:
            if total + incoming <= self.max_bytes:
                break
            victims.append(e)
            total -= e.size
        for e in victims:
            self.remove(e)
        self._total = total
        return Dropped(
            batches=len(victims),
            records=sum(e.records for e in victims),
            bytes=sum(e.size for e in victims),
            seq_ranges=[(e.source_kind, e.source_id, e.first_seq, e.last_seq) for e in victims],
        )

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _mtime(e: SpoolEntry) -> float:
    try:
        return e.path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
