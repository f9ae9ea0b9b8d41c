"""The trainer's settings: the ``[trainer]`` table of the config file, then ``FOTO3D_TRAINER_*``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from foto3d.libs.config import Settings
from foto3d.libs.settings import Env, Table

# foto3d.libs.splat.reduce's RECOMMENDED_REFIT_STEPS, repeated so that reading settings loads no
# numpy; tests/trainer/test_trainer.py::test_the_trainer_refit_default_is_the_cli_one keeps them equal.
REDUCE_REFIT_STEPS = 1000


class TrainerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    concurrency: Annotated[
        int,
        Meta(ge=1, le=16, description="jobs at the same time on this host (one GPU usually means 1)"),
        Env("FOTO3D_TRAINER_CONCURRENCY"),
    ] = 1
    max_jobs: Annotated[
        int,
        Meta(ge=0, description="exit after this many jobs (one trainer per dataset); 0 = never"),
        Env("FOTO3D_TRAINER_MAX_JOBS"),
    ] = 0
    store: Annotated[
        str,
        Meta(description="blob store for results: a folder or s3://bucket/prefix; empty = the data folder"),
        Env("FOTO3D_ARTIFACT_STORE"),
    ] = ""
    stop_grace_s: Annotated[
        float,
        Meta(ge=0, description="on SIGTERM, let the running job finish if it ends within this long"),
        Env("FOTO3D_TRAINER_STOP_GRACE"),
    ] = 20.0
    # ack_wait is 30 s: the keepalive must stay well below it.
    keepalive_s: Annotated[
        float,
        Meta(gt=0, description="how often the work message is kept alive with in_progress()"),
        Env("FOTO3D_TRAINER_KEEPALIVE"),
    ] = 10.0
    # The server hands the message to another trainer once ack_wait (30 s) passes without
    # in_progress(), and the same job must never train twice at once.
    ownership_timeout_s: Annotated[
        float,
        Meta(gt=0, description="cut off from NATS this long, a running job is given up"),
        Env("FOTO3D_TRAINER_OWNERSHIP_TIMEOUT"),
    ] = 25.0
    heartbeat_s: Annotated[
        float, Meta(gt=0, description="heartbeat interval (trainer and job)"), Env("FOTO3D_TRAINER_HEARTBEAT")
    ] = 5.0
    min_free_gb: Annotated[
        float,
        Meta(ge=0, description="preflight: free disk the work folder needs"),
        Env("FOTO3D_TRAINER_MIN_FREE_GB"),
    ] = 20.0
    require_gpu: Annotated[
        bool,
        Meta(description="preflight: `nvidia-smi -L` must list a GPU"),
        Env("FOTO3D_TRAINER_REQUIRE_GPU"),
    ] = True
    keep_failed: Annotated[
        bool,
        Meta(description="keep a failed job's work folder for inspection (successful ones are removed)"),
        Env("FOTO3D_TRAINER_KEEP_FAILED"),
    ] = True
    reduce_method: Annotated[
        str,
        Meta(
            description="how the reducer scores gaussians: auto, views, area, volume or opacity (docs/splat.md)"
        ),
        Env("FOTO3D_TRAINER_REDUCE_METHOD"),
    ] = "auto"
    keep_unreduced: Annotated[
        bool,
        Meta(
            description="also store the splat as exported, before reduction, so reviewers compare "
            "the two (costs its size in the store)"
        ),
        Env("FOTO3D_TRAINER_KEEP_UNREDUCED"),
    ] = True
    reduce_quality_views: Annotated[
        int,
        Meta(
            ge=0,
            le=64,
            description="orbit views that score the reduced splat against the unreduced one "
            "(PSNR/SSIM in the job's metrics; needs torch); 0 = off",
        ),
        Env("FOTO3D_TRAINER_REDUCE_QUALITY_VIEWS"),
    ] = 8
    reduce_refit_steps: Annotated[
        int,
        Meta(
            ge=0,
            le=10_000,
            description="after reducing, at most this many steps re-fitting the reduced splat to the "
            "unreduced one's renders (CPU, needs torch; the best step on held-out views is kept); 0 = off",
        ),
        Env("FOTO3D_TRAINER_REDUCE_REFIT_STEPS"),
    ] = REDUCE_REFIT_STEPS
    reduce_refit_seconds: Annotated[
        float,
        Meta(
            ge=0,
            description="time budget of that re-fit in seconds; 0 = as `foto3d splat reduce`: 120 s per "
            "62,500 gaussians of the export, 120 to 600 s",
        ),
        Env("FOTO3D_TRAINER_REDUCE_REFIT_SECONDS"),
    ] = 0.0
    train_args: Annotated[
        list[str],
        Meta(description='extra ns-train arguments, e.g. ["--pipeline.model.cull-alpha-thresh", "0.005"]'),
    ] = msgspec.field(default_factory=list)
    ns_bin: Annotated[
        str,
        Meta(description="folder holding ns-train/ns-export/ns-process-data when they are not on PATH"),
        Env("FOTO3D_TRAINER_NS_BIN"),
    ] = ""
    trainer_id: Annotated[
        str,
        Meta(description="heartbeat id (default <host>-<pid>); the scaler sets it to match its machines"),
        Env("FOTO3D_TRAINER_ID"),
    ] = ""


SETTINGS = Table("trainer", TrainerSettings, "the trainer (GPU hosts)", docs="trainer.md")


def store_uri(cfg: TrainerSettings, settings: Settings) -> str:
    """Where results go; keys are ``artifacts/<object>/<job>/<attempt>/...`` under it."""
    return cfg.store or str(Path(settings.data_dir))
