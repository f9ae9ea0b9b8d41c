"""Fixtures of the queue tests: datasets on disk and quick retry settings."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A dataset folder as a rig writes it: images/ with a few JPEGs."""
    d = tmp_path / "datasets" / "acme-chair-001"
    (d / "images").mkdir(parents=True)
    for i in range(3):
        (d / "images" / f"frame_{i:05d}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return d


@pytest.fixture(autouse=True)
def quick_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries after 0.2 s, doubling, at most 3 attempts: tests see the whole life of a job fast."""
    monkeypatch.setenv("FOTO3D_QUEUE_BACKOFF_S", "0.2")
    monkeypatch.setenv("FOTO3D_QUEUE_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("FOTO3D_QUEUE_RENEW_S", "0.5")
