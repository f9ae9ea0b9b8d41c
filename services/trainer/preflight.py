"""Checks made before a job starts, so a missing GPU fails in a second, not at hour two."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from foto3d.services.trainer.settings import TrainerSettings

NS_TOOLS = ("ns-train", "ns-export", "ns-process-data")
GiB = 1024**3


class PreflightError(RuntimeError):
    """The host or the dataset cannot run this job; the message says what to fix."""


def tool_path(cfg: TrainerSettings) -> str | None:
    """The PATH used for the ns-* tools (``ns_bin`` first when set)."""
    path = os.environ.get("PATH", "")
    return f"{cfg.ns_bin}{os.pathsep}{path}" if cfg.ns_bin else path


def missing_tools(cfg: TrainerSettings) -> list[str]:
    search = tool_path(cfg)
    return [t for t in NS_TOOLS if shutil.which(t, path=search) is None]


async def gpu_names() -> list[str]:
    """GPUs listed by ``nvidia-smi -L``; raises PreflightError when none can be seen."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise PreflightError(
            "no GPU: nvidia-smi is not installed or not on PATH "
            "(set FOTO3D_TRAINER_REQUIRE_GPU=0 only for CPU test runs)"
        )
    proc = await asyncio.create_subprocess_exec(
        exe, "-L", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
    except TimeoutError:
        proc.kill()
        raise PreflightError("no GPU: nvidia-smi -L did not answer within 20 s (driver hung?)") from None
    text = out.decode(errors="replace").strip()
    gpus = [line for line in text.splitlines() if line.startswith("GPU ")]
    if proc.returncode != 0 or not gpus:
        raise PreflightError(f"no GPU visible: nvidia-smi -L says: {text[:300] or 'nothing'}")
    return gpus


def check_disk(folder: Path, min_free_gb: float) -> float:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free / GiB
    if free < min_free_gb:
        raise PreflightError(
            f"not enough disk: {free:.1f} GB free in {folder}, need {min_free_gb:g} GB "
            "([trainer] min_free_gb)"
        )
    return free


def check_dataset(path: Path) -> None:
    if not path.exists():
        raise PreflightError(f"dataset {path} does not exist on this trainer")
    if not path.is_dir():
        raise PreflightError(f"dataset {path} is not a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise PreflightError(f"dataset {path} is not readable by this trainer")
    try:
        next(path.iterdir())
    except StopIteration:
        raise PreflightError(f"dataset {path} is empty") from None
    except OSError as exc:
        raise PreflightError(f"dataset {path} cannot be read: {exc}") from None


async def host_checks(cfg: TrainerSettings, workdir: Path) -> dict[str, float]:
    """Everything about the host; returns figures worth putting into the job's metrics."""
    missing = missing_tools(cfg)
    if missing:
        raise PreflightError(
            f"{', '.join(missing)} not found on PATH: install nerfstudio (pip install 'foto3d[trainer]') "
            "or set [trainer] ns_bin"
        )
    figures: dict[str, float] = {}
    if cfg.require_gpu:
        figures["gpus"] = float(len(await gpu_names()))
    figures["disk_free_gb"] = round(await asyncio.to_thread(check_disk, workdir, cfg.min_free_gb), 1)
    return figures
