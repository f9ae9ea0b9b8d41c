"""The trained files a reviewer looks at, from wherever the trainer stored them.

Local (``file://``) artifacts are served as they are. Artifacts in S3 are downloaded once into a
bounded cache under the catalog's folder, checked against the SHA-256 the trainer recorded, and
served from there: the review page's viewer fetches them from the dashboard's own origin, so the
bucket needs no CORS rule and staff need no S3 credentials in the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import tempfile
from pathlib import Path

from foto3d.libs.storage.artifacts import fetch_artifact
from foto3d.libs.storage.base import StorageError
from foto3d.proto.jobs import UNREDUCED_KIND, Artifact
from foto3d.proto.objects import JobView

#: Total size the review cache may keep; the least recently used files go first beyond it.
CACHE_BYTES = 2 * 1024**3
#: The name that picks a job's unreduced export in review URLs (no format is spelled so).
UNREDUCED = "unreduced"
_REVIEWABLE = ("splat", UNREDUCED_KIND)


def can_review(art: Artifact) -> bool:
    """A splat a reviewer can open (local or S3)."""
    return art.kind in _REVIEWABLE and art.uri.startswith(("file://", "s3://"))


def reviewable(job: JobView) -> list[Artifact]:
    """The job's splat artifacts a reviewer can open (local or S3)."""
    return [a for a in job.artifacts if can_review(a)]


def url_name(art: Artifact) -> str:
    """The last part of the artifact's review URL: its format, or ``unreduced``."""
    return UNREDUCED if art.kind == UNREDUCED_KIND else art.format


def find(job: JobView, name: str) -> Artifact | None:
    return next((a for a in reviewable(job) if url_name(a) == name), None)


class ReviewFiles:
    """Local paths for reviewable artifacts (S3 ones through the cache)."""

    def __init__(self, cache_dir: Path, limit: int = CACHE_BYTES) -> None:
        self.cache_dir = cache_dir
        self.limit = limit
        self._locks: dict[str, asyncio.Lock] = {}

    async def path(self, art: Artifact) -> Path:
        """Raises StorageError (missing, unreadable or changed since training)."""
        uri, sha = art.uri, art.sha256
        if not uri.startswith("s3://"):
            return await fetch_artifact(uri, sha, self.cache_dir)
        name = sha or hashlib.sha256(uri.encode()).hexdigest()
        cached = self.cache_dir / name
        async with self._locks.setdefault(name, asyncio.Lock()):  # one download per file at a time
            if cached.is_file():
                cached.touch()  # recently used
                return cached
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".fetch-") as tmp:
                got = await fetch_artifact(uri, sha, Path(tmp))
                got.replace(cached)  # complete and checked, or not there at all
            await asyncio.to_thread(self._trim, keep=cached)
            return cached

    def _trim(self, keep: Path) -> None:
        files = sorted(
            (p for p in self.cache_dir.iterdir() if p.is_file()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        total = 0
        for p in files:
            total += p.stat().st_size
            if total > self.limit and p != keep:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


def clear_partial(cache_dir: Path) -> None:
    """Remove downloads a crash left half-done (they are never served: only renamed files are)."""
    if cache_dir.is_dir():
        for p in cache_dir.glob(".fetch-*"):
            shutil.rmtree(p, ignore_errors=True)


__all__ = [
    "UNREDUCED",
    "ReviewFiles",
    "StorageError",
    "can_review",
    "clear_partial",
    "find",
    "reviewable",
    "url_name",
]
