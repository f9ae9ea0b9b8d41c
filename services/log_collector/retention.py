"""Retention: prune by age and by size, in small transactions, in the background.

Each chunk is its own short write transaction, and the pruner yields between
chunks, so ingestion and queries never wait behind one big DELETE.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from foto3d.services.log_collector.store import LogStore

log = logging.getLogger(__name__)

DAY = 86_400.0
MB = 1024 * 1024


@dataclass
class PruneStats:
    runs: int = 0
    deleted_by_age: int = 0
    deleted_by_size: int = 0
    last_run: float = 0.0
    last_error: str = ""


@dataclass
class Pruner:
    store: LogStore
    retention_days: float
    max_db_mb: float
    interval_s: float = 60.0
    chunk: int = 2000
    # Pause between chunks: lets inserts and queries in.
    pause_s: float = 0.01
    stats: PruneStats = field(default_factory=PruneStats)

    async def run_once(self) -> int:
        deleted = await self._by_age() + await self._by_size()
        if deleted:
            await self.store.release_free_pages()
        self.stats.runs += 1
        self.stats.last_run = time.time()
        return deleted

    async def _by_age(self) -> int:
        if self.retention_days <= 0:
            return 0
        cutoff = time.time() - self.retention_days * DAY
        total = 0
        while True:
            n = await self.store.delete_older_than(cutoff, self.chunk)
            total += n
            if n < self.chunk:
                break
            await asyncio.sleep(self.pause_s)
        self.stats.deleted_by_age += total
        if total:
            log.info("pruned %d log records older than %.1f days", total, self.retention_days)
        return total

    async def _by_size(self) -> int:
        if self.max_db_mb <= 0:
            return 0
        limit = int(self.max_db_mb * MB)
        used = await self.store.used_bytes()
        if used <= limit:
            return 0
        # Deleting rows frees pages only partly at once (the FTS index keeps delete
        # markers until it merges), so aim at an estimate and re-check next run
        # instead of deleting until the page count drops.
        rows = await self.store.count()
        if rows == 0:
            return 0
        per_row = used / rows
        target = min(rows, int((used - limit * 0.9) / per_row) + 1)
        total = 0
        while total < target:
            n = await self.store.delete_oldest(min(self.chunk, target - total))
            if n == 0:
                break
            total += n
            await asyncio.sleep(self.pause_s)
        await self.store.merge_fts()
        self.stats.deleted_by_size += total
        log.info(
            "pruned %d oldest log records: store used %.1f MB, cap %.1f MB", total, used / MB, self.max_db_mb
        )
        return total

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
                self.stats.last_error = ""
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.last_error = repr(exc)
                log.exception("pruning the log store failed")
            await asyncio.sleep(self.interval_s)
