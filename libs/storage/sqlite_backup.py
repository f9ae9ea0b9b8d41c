"""Backups of every sqlite database in a data folder, taken while the system runs.

Each database is copied with sqlite's online backup API in one step, inside one read
transaction: the copy is the database as of one moment (every transaction committed before
it, none after), even while services keep writing — WAL mode lets them go on meanwhile.
Copying the files instead could catch a database between its main file and its WAL.

The databases are found, not listed: every file under the data folder that starts with
sqlite's header (catalog, gateway, log collector, notifier, queue, staff users, and any
store added later). The NATS store is not sqlite and has its own tools (`nats stream
backup`); the streams are replicated, and the queue's table is rebuilt from them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from foto3d import __version__

SQLITE_HEADER = b"SQLite format 3\x00"
MANIFEST = "manifest.json"
# Folders of the data folder that hold no sqlite (large, and read by other tools).
SKIPPED_DIRS = frozenset({"nats", "log-spool"})
SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(Exception):
    pass


@dataclass(frozen=True)
class Copied:
    path: str  # relative to the data folder, "/"-separated
    bytes: int
    sha256: str
    tables: int


def is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def find_databases(data_dir: Path) -> list[Path]:
    """Every sqlite database under ``data_dir`` (relative paths, sorted)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(data_dir):
        here = Path(root)
        if here == data_dir:
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        for name in files:
            if name.endswith(SIDE_FILES):
                continue
            path = here / name
            if path.is_file() and not path.is_symlink() and is_sqlite(path):
                found.append(path.relative_to(data_dir))
    return sorted(found)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _copy(src: Path, dst: Path, *, read_only: bool) -> None:
    """Copy one database with the online backup API into ``dst`` (replaced whole)."""
    uri = f"file:{src}?mode=ro" if read_only else f"file:{src}"
    source = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        target = sqlite3.connect(dst, timeout=30)
        try:
            source.backup(target)  # pages=-1: one step, one snapshot
        finally:
            target.close()
    finally:
        source.close()


def _check(path: Path) -> int:
    """``PRAGMA integrity_check`` on a copy; returns its number of tables."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (result,) = db.execute("PRAGMA integrity_check").fetchone()
        if result != "ok":
            raise BackupError(f"{path}: integrity check failed: {result}")
        (tables,) = db.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()
        return int(tables)
    finally:
        db.close()


def backup(data_dir: Path, out_dir: Path) -> list[Copied]:
    """Copy every database of ``data_dir`` into ``out_dir`` (same relative paths) with a manifest."""
    data_dir = data_dir.resolve()
    if not data_dir.is_dir():
        raise BackupError(f"no data folder at {data_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise BackupError(f"{out_dir} is not empty: back up into a new folder")
    copied: list[Copied] = []
    for rel in find_databases(data_dir):
        dst = out_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        partial = dst.with_name(dst.name + ".partial")
        # Read-write open: a read-only connection cannot recover a WAL whose -shm is missing.
        _copy(data_dir / rel, partial, read_only=False)
        tables = _check(partial)
        partial.rename(dst)
        copied.append(Copied(rel.as_posix(), dst.stat().st_size, _sha256(dst), tables))
    manifest = {
        "foto3d": __version__,
        "taken_at": time.time(),
        "data_dir": str(data_dir),
        "databases": [asdict(c) for c in copied],
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return copied


def read_manifest(backup_dir: Path) -> list[Copied]:
    path = backup_dir / MANIFEST
    try:
        raw = json.loads(path.read_text())
        return [Copied(**d) for d in raw["databases"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{path} is missing or unreadable ({exc}): not a foto3d backup") from None


def verify(backup_dir: Path) -> list[Copied]:
    """Check every file of a backup against its manifest (size, SHA-256, integrity)."""
    entries = read_manifest(backup_dir)
    for c in entries:
        path = backup_dir / c.path
        if not path.is_file():
            raise BackupError(f"{path} is missing from the backup")
        if path.stat().st_size != c.bytes or _sha256(path) != c.sha256:
            raise BackupError(f"{path} does not match the manifest (changed or damaged)")
        _check(path)
    return entries


def _inside(base: Path, rel: str) -> Path:
    target = (base / rel).resolve()
    if not target.is_relative_to(base):
        raise BackupError(f"refusing a manifest path outside the data folder: {rel}")
    return target


def restore(backup_dir: Path, data_dir: Path) -> list[Copied]:
    """Put every database of a verified backup in place under ``data_dir``.

    The services must be stopped (the caller checks): a running one would keep its old
    pages in memory and write over the restored file.
    """
    entries = verify(backup_dir)
    data_dir = data_dir.resolve()
    for c in entries:
        target = _inside(data_dir, c.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Through sqlite, not a file copy: the target's own WAL and -shm stay coherent.
        _copy(backup_dir / c.path, target, read_only=True)
    return entries


def listing(entries: list[Copied]) -> Iterator[str]:
    for c in entries:
        yield f"  {c.path}  {c.bytes / 1024:.0f} KiB, {c.tables} tables"
