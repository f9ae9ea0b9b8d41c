"""One job's pipeline: preflight, ns-process-data, ns-train, ns-export, reduce, upload.

Each nerfstudio step is a subprocess (see :mod:`.process`); every output line
goes to ``on_line`` (the log server) and training rows become progress. Any
failure raises :class:`StepError` naming the step, so the job's ``failed``
event says where and why.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry import trace

from foto3d.libs.storage import BlobStore
from foto3d.libs.tracing.job import job_attributes
from foto3d.proto.jobs import UNREDUCED_KIND, Artifact, StepTiming, WorkItem
from foto3d.services.trainer.dataset import fetch_dataset, image_folder, needs_processing
from foto3d.services.trainer.preflight import PreflightError, host_checks, tool_path
from foto3d.services.trainer.process import StepError, StepProcess
from foto3d.services.trainer.progress import ProgressParser
from foto3d.services.trainer.reduce import load_training_cameras, reduce_export
from foto3d.services.trainer.settings import TrainerSettings

LineSink = Callable[[str, str, str], None]  # (step, line, stream)
_tracer = trace.get_tracer("foto3d.trainer")
ProgressSink = Callable[[str, int, int, float | None], None]  # (stage, step, total, eta_s)

CONTENT_TYPES = {"ply": "application/octet-stream", "spz": "application/octet-stream", "yml": "text/yaml"}


@dataclass
class PipelineResult:
    artifacts: list[Artifact]
    metrics: dict[str, float]
    timings: list[StepTiming]


def train_argv(data: Path, out: Path, item: WorkItem, run: str, cfg: TrainerSettings) -> list[str]:
    """``ns-train splatfacto`` with nerfstudio 1.1.5's flags."""
    return [
        "ns-train",
        "splatfacto",
        "--data",
        str(data),
        "--output-dir",
        str(out),
        "--experiment-name",
        item.job_id,
        "--timestamp",
        run,
        "--max-num-iterations",
        str(item.options.steps),
        "--pipeline.model.sh-degree",
        str(item.options.sh_degree),
        "--viewer.quit-on-train-completion",
        "True",
        "--vis",
        "tensorboard",
        "--machine.num-devices",
        "1",
        # One row per log step instead of a redrawn table: every row reaches the log server once.
        "--logging.local-writer.max-log-size",
        "0",
        *cfg.train_args,
    ]


def export_argv(config_yml: Path, export_dir: Path) -> list[str]:
    return ["ns-export", "gaussian-splat", "--load-config", str(config_yml), "--output-dir", str(export_dir)]


def process_argv(raw: Path, processed: Path) -> list[str]:
    return ["ns-process-data", "images", "--data", str(raw), "--output-dir", str(processed)]


def artifact_key(item: WorkItem, name: str) -> str:
    return f"artifacts/{item.object_id}/{item.job_id}/{item.attempt}/{name}"


@dataclass
class Pipeline:
    item: WorkItem
    workdir: Path
    cfg: TrainerSettings
    store: BlobStore
    on_line: LineSink
    on_progress: ProgressSink
    run_name: str = "run"
    timings: list[StepTiming] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    current: StepProcess | None = None
    stage: str = ""
    # The open span of the step in hand (one at a time), a child of the attempt's span.
    span: trace.Span | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = tool_path(self.cfg) or env.get("PATH", "")
        # Python tools buffer output into a pipe; progress must arrive as it happens.
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("COLUMNS", "200")
        return env

    def _enter(self, stage: str) -> float:
        self.stage = stage
        self._end_span()
        attrs = job_attributes(self.item.job_id, self.item.object_id, stage, self.item.attempt)
        self.span = _tracer.start_span(stage, attributes=attrs)
        self.on_progress(stage, 0, 0, None)
        return time.monotonic()

    def _end_span(self, error: BaseException | None = None) -> None:
        if self.span is None:
            return
        if error is not None:
            self.span.record_exception(error)
            self.span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)[:500]))
        self.span.end()
        self.span = None

    def _done(self, stage: str, started: float) -> float:
        self._end_span()
        seconds = round(time.monotonic() - started, 3)
        self.timings.append(StepTiming(step=stage, seconds=seconds))
        self.metrics[f"seconds_{stage.replace('-', '_')}"] = seconds
        return seconds

    async def _step(
        self,
        name: str,
        argv: list[str],
        on_line: Callable[[str, str], None] | None = None,
        unlogged: Callable[[str], bool] | None = None,
    ) -> None:
        """Run one step; every output line goes to the log except those ``unlogged`` claims."""

        def sink(line: str, stream: str) -> None:
            if unlogged is None or not unlogged(line):
                self.on_line(name, line, stream)
            if on_line:
                on_line(line, stream)

        self.current = StepProcess(name, argv, self.workdir, self._env(), sink)
        try:
            await self.current.run()
        finally:
            self.current = None

    async def run(self) -> PipelineResult:
        try:
            return await self._run()
        except BaseException as exc:
            self._end_span(exc)
            raise

    async def _run(self) -> PipelineResult:
        item = self.item
        t = self._enter("preflight")
        try:
            self.metrics.update(await host_checks(self.cfg, self.workdir))
            data = await fetch_dataset(item.dataset, self.workdir)
        except PreflightError as exc:
            raise StepError("preflight", str(exc)) from exc
        self._done("preflight", t)

        if needs_processing(data, item.options.process_data):
            raw = image_folder(data)
            if raw is None:
                raise StepError("preflight", f"dataset {item.dataset} has no transforms.json and no images")
            t = self._enter("process-data")
            processed = self.workdir / "processed"
            await self._step("process-data", process_argv(raw, processed))
            self._done("process-data", t)
            data = processed

        t = self._enter("train")
        out = self.workdir / "outputs"
        parser = ProgressParser(item.options.steps)

        def on_train_line(line: str, _stream: str) -> None:
            p = parser.feed(line)
            if p is not None:
                self.on_progress("train", p.step, p.total, p.eta_s)

        # ~one table row per logging interval (hundreds a job): they are the job's progress
        # (JobProgress), and in the log they would bury the lines that matter.
        await self._step(
            "train", train_argv(data, out, item, self.run_name, self.cfg), on_train_line, parser.is_row
        )
        train_s = self._done("train", t)
        self.metrics["steps"] = float(item.options.steps)
        self.metrics["seconds_per_step"] = round(train_s / max(1, item.options.steps), 6)
        configs = sorted(out.glob(f"*/splatfacto/{self.run_name}/config.yml")) or sorted(
            out.glob("**/config.yml")
        )
        if not configs:
            raise StepError("train", f"ns-train finished but wrote no config.yml under {out}")
        config_yml = configs[0]

        t = self._enter("export")
        export_dir = self.workdir / "export"
        await self._step("export", export_argv(config_yml, export_dir))
        exported = export_dir / "splat.ply"
        if not exported.is_file():
            raise StepError("export", f"ns-export finished but wrote no {exported.name}")
        self._done("export", t)

        t = self._enter("reduce")
        try:
            cameras = await asyncio.to_thread(
                load_training_cameras,
                data / "transforms.json",
                config_yml.parent / "dataparser_transforms.json",
            )
            loop = asyncio.get_running_loop()

            def refit_progress(done: int, total: int) -> None:  # called in reduce_export's thread
                loop.call_soon_threadsafe(self.on_progress, "reduce", done, total, None)

            reduced = await asyncio.to_thread(
                functools.partial(
                    reduce_export,
                    exported,
                    self.workdir / "final",
                    item.options,
                    lambda msg: self.on_line("reduce", msg, "stderr"),
                    cameras,
                    self.cfg.reduce_method,
                    self.cfg.reduce_quality_views,
                    refit_steps=self.cfg.reduce_refit_steps,
                    refit_seconds=self.cfg.reduce_refit_seconds,
                    progress=refit_progress,
                )
            )
        except Exception as exc:
            raise StepError("reduce", f"reduce failed: {exc}") from exc
        self._done("reduce", t)
        if item.options.reduce_iterations:
            # Prune + fine-tune rounds are not supported yet (docs/trainer.md says why): say so.
            self.on_line(
                "reduce",
                f"Warning: reduce_iterations={item.options.reduce_iterations} asked for prune + fine-tune "
                "rounds, which this trainer does not support yet; the splat was reduced once",
                "stderr",
            )
            self.metrics["reduce_iterations_done"] = 0.0
        self.metrics["gaussians_raw"] = float(reduced.gaussians_in)
        self.metrics["gaussians"] = float(reduced.gaussians_out)
        self.metrics["reduced"] = 1.0 if reduced.reduced else 0.0
        self.metrics["bytes_raw_ply"] = float(exported.stat().st_size)
        if reduced.refit is not None:
            for key in ("steps", "best_step", "seconds", "check_psnr_before", "check_psnr_after"):
                value = reduced.refit.get(key)
                if isinstance(value, int | float) and math.isfinite(value):
                    self.metrics[f"refit_{key}"] = float(value)
        if reduced.psnr is not None and reduced.ssim is not None:
            self.metrics["reduced_psnr"] = round(reduced.psnr, 3)
            self.metrics["reduced_ssim"] = round(reduced.ssim, 5)

        t = self._enter("upload")
        artifacts: list[Artifact] = []
        try:
            for fmt, path in reduced.files.items():
                info = await self.store.put_file(
                    artifact_key(item, path.name), path, content_type=CONTENT_TYPES.get(fmt)
                )
                self.metrics[f"bytes_{fmt.replace('.', '_').replace('-', '_')}"] = float(info.size)
                artifacts.append(
                    Artifact(
                        kind="splat",
                        format=fmt,
                        uri=info.uri or self.store.uri(info.key),
                        bytes=info.size,
                        sha256=info.sha256 or "",
                        gaussians=reduced.gaussians_out,
                        up=reduced.up.get(fmt),
                        front_azimuth=reduced.front_azimuth,
                    )
                )
            if reduced.reduced and self.cfg.keep_unreduced:
                # the export as trained, for the reviewer's side-by-side; never published
                info = await self.store.put_file(
                    artifact_key(item, "unreduced.ply"), exported, content_type=CONTENT_TYPES.get("ply")
                )
                artifacts.append(
                    Artifact(
                        kind=UNREDUCED_KIND,
                        format="ply",
                        uri=info.uri or self.store.uri(info.key),
                        bytes=info.size,
                        sha256=info.sha256 or "",
                        gaussians=reduced.gaussians_in,
                        up=reduced.source_up,
                    )
                )
            info = await self.store.put_file(artifact_key(item, "config.yml"), config_yml)
            artifacts.append(
                Artifact(
                    kind="config",
                    format="yml",
                    uri=info.uri or self.store.uri(info.key),
                    bytes=info.size,
                    sha256=info.sha256 or "",
                )
            )
        except Exception as exc:
            raise StepError("upload", f"storing results failed: {exc}") from exc
        self._done("upload", t)
        return PipelineResult(artifacts=artifacts, metrics=self.metrics, timings=self.timings)

    async def stop(self) -> None:
        """Stop the running step (cancel, hand-back)."""
        if self.current is not None:
            await self.current.terminate()
