"""The trainer's own records go out once, with their job's ids."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from foto3d.libs.config import Settings
from foto3d.libs.logsdk.service_logs import ServiceLogFilter
from foto3d.services.trainer.joblog import JobLog


async def test_a_jobs_failure_is_not_shipped_again_by_the_process_handler(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # ``foto3d serve`` ships the process's WARNING/ERROR records (source ``service``) without
    # the job's ids: the same failure shipped that way became a second alert and a second mail.
    assert settings.nats_urls
    joblog = JobLog("t-joblog", settings.nats_urls, tmp_path)
    try:
        with caplog.at_level(logging.ERROR, logger="foto3d.services.trainer.joblog"):
            joblog.emit("ERROR", "job j-1 failed at train: boom", job_id="j-1", object_id="acme-lamp-001")
        (record,) = [r for r in caplog.records if "failed at train" in r.getMessage()]
        assert not ServiceLogFilter(joblog._shipper, frozenset()).filter(record)
    finally:
        await joblog.close()
