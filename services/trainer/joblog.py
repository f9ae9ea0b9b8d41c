"""Where a trainer's output lines go: the log server, through the log SDK.

One ``LogShipper`` per trainer (source ``trainer/<id>``) batches records onto
the LOGS stream and spools them to disk while NATS is away; every record
carries the job and object it belongs to. A ``LineClassifier`` per pipeline
step gives each nerfstudio line a level and folds a Python traceback into one
ERROR record whose ``exc`` holds the whole traceback.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Literal

from foto3d.libs.logsdk import LogShipper
from foto3d.libs.logsdk.lines import ClassifiedLine, LineClassifier
from foto3d.libs.logsdk.service_logs import ALREADY_SHIPPED
from foto3d.proto.logs import Level

log = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr"]


class JobLog:
    def __init__(self, trainer_id: str, nats_urls: list[str], data_dir: Path) -> None:
        self.trainer_id = trainer_id
        self._shipper = LogShipper("trainer", trainer_id, nats_urls=nats_urls, data_dir=data_dir)
        # (job_id, step) -> classifier; a traceback spans lines, so state is per step.
        self._classifiers: dict[tuple[str, str], LineClassifier] = {}

    def line(self, job_id: str, object_id: str, step: str, line: str, stream: str) -> None:
        """One raw output line of a pipeline step."""
        key = (job_id, step)
        clf = self._classifiers.get(key)
        if clf is None:
            clf = self._classifiers[key] = LineClassifier()
        src: Stream = "stderr" if stream == "stderr" else "stdout"
        for rec in clf.feed(line, src):
            self._ship(rec, job_id, object_id, step)

    def _ship(self, rec: ClassifiedLine, job_id: str, object_id: str, step: str) -> None:
        self._shipper.emit(
            rec.level,
            rec.message,
            logger=f"nerfstudio.{step}",
            exc=rec.exc,
            job_id=job_id,
            object_id=object_id,
            ts=rec.ts,
        )

    def emit(
        self,
        level: str,
        message: str,
        *,
        job_id: str | None = None,
        object_id: str | None = None,
        logger: str = "trainer",
    ) -> None:
        """A record of the trainer's own (job started, failed, handed back...)."""
        lvl = Level.parse(level)
        # Shipped below with the job's ids: the process's own handler must not ship it again
        # without them, or one failure would be two alerts (and two mails) of different stories.
        log.log(int(lvl), "%s", message, extra=ALREADY_SHIPPED)
        self._shipper.emit(int(lvl), message, logger=logger, job_id=job_id, object_id=object_id)

    def end_job(self, job_id: str, object_id: str) -> None:
        """Ship a traceback still open at the end of a step; forget the job's state."""
        for key in [k for k in self._classifiers if k[0] == job_id]:
            for rec in self._classifiers.pop(key).flush():
                self._ship(rec, job_id, object_id, key[1])

    async def flush(self, timeout: float = 5.0) -> bool:
        return await asyncio.to_thread(self._shipper.flush, timeout)

    async def close(self) -> None:
        await asyncio.to_thread(self._shipper.close)
