"""The services image builds and its `foto3d` starts, where a container engine runs.

This machine class has a docker client but no daemon, so the test skips here with the reason;
it is the one skip ``FOTO3D_NO_SKIPS=1`` allows (``tests/conftest.py``, ``ALLOWED_SKIPS``), and
docs/deploy.md says so. Where a daemon answers, it builds ``Dockerfile.services`` and runs
``foto3d --help`` in the image.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NO_ENGINE = "no container engine runs on this machine (docker info fails): images and compose are not started"


def _engine() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        ok = subprocess.run([docker, "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return None
    return docker if ok else None


def test_the_services_image_builds_and_starts() -> None:
    docker = _engine()
    if docker is None:
        pytest.skip(NO_ENGINE)
    tag = "foto3d-services:e2e-test"
    build = [docker, "build", "-f", "deploy/docker/Dockerfile.services", "-t", tag, "."]
    subprocess.run(build, cwd=REPO, check=True, timeout=1800)
    try:
        run = subprocess.run(
            [docker, "run", "--rm", tag, "foto3d", "--help"], capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        assert "serve" in run.stdout
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True, timeout=120)
