"""A real full disk (a small tmpfs in a private mount namespace): warned before, nothing lost
silently while full, everything resumes without a person afterwards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

import pytest

from foto3d.app.topology import assemble
from foto3d.libs.bus.topology import GiB, MiB
from foto3d.libs.config import ConfigError
from foto3d.libs.diskspace import SETTINGS, DiskSettings, DiskUsage, StreamFill, judge, sized_topology

LINES = 10_000


def drill(*args: str) -> dict[str, Any]:
    """Run tests/app/diskfull_drill.py as root in its own mount namespace; its JSON result."""
    unshare = shutil.which("unshare")
    probe = subprocess.run(
        [
            unshare or "unshare",
            "-m",
            "sh",
            "-c",
            "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d && umount $d",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if unshare is None or probe.returncode != 0:
        pytest.fail(
            "the full-disk drill needs root and `unshare -m` with tmpfs mounts (util-linux); "
            f"here: {probe.stderr.strip() or 'unshare not found'}"
        )
    done = subprocess.run(
        [unshare, "-m", sys.executable, "-m", "tests.app.diskfull_drill", "--lines", str(LINES), *args],
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_full_disk_while_run_holds_records_loses_nothing_and_resumes_by_itself() -> None:
    r = drill("--hold", "60")
    # Warned before it happened: /healthz and an alert mail.
    assert r["disk_before"] == "ok" and r["disk_alert_mailed"], r
    assert r["health_while_full"] == "degraded", r
    # While full: the command's status kept, no traceback, records held in memory.
    assert r["run_rc"] == 0 and not r["run_traceback"], r
    assert r["run_held"], r
    # Space returned while `run` held them: every line stored exactly once, nothing reported lost.
    assert r["settled"] and r["stored"] == r["distinct"] == LINES and r["loss_reported"] == 0, r
    # Everything resumes with nobody restarting anything.
    assert r["after_rc"] == 0 and r["after_stored"] == 100, r
    assert r["health_after"] == "ok" and r["disk_after"] == "ok", r
    assert r["up_rc"] == 0 and r["up_tracebacks"] == 0, r


def test_full_disk_past_the_hold_reports_exactly_what_was_lost() -> None:
    r = drill("--hold", "0", "--free-after-run")
    assert r["run_rc"] == 0 and not r["run_traceback"], r
    assert "are lost" in r["run_stderr_tail"], r
    # Exact: what is stored plus what the loss record reports is what `run` emitted
    # (the command's lines and run's own two records), no duplicates.
    assert r["settled"] and r["stored"] == r["distinct"], r
    assert r["stored_all"] + r["loss_reported"] == LINES + 2, r
    assert r["loss_reported"] > 0 and r["loss_mailed"], r
    assert r["after_rc"] == 0 and r["after_stored"] == 100, r
    assert r["health_after"] == "ok", r


def test_stream_limits_shrink_to_a_small_disk_or_say_what_to_change() -> None:
    declared = assemble()
    big, notes = sized_topology(declared, 500 * GiB, 50)
    assert big is declared and notes == []
    small, notes = sized_topology(declared, 15 * MiB, 50)
    limited = {s.name: s.max_bytes for s in small.streams if s.max_bytes > 0}
    assert sum(limited.values()) <= 15 * MiB // 2 + 2 * MiB
    assert limited["LOGS"] > limited["DEAD"] and len(notes) == len(limited)
    with pytest.raises(ConfigError, match="--data"):
        sized_topology(declared, 3 * MiB, 50)


def test_disk_settings_come_from_the_file_and_the_environment_and_refuse_bad_values() -> None:
    cfg = SETTINGS.read({"disk": {"warn_stream_pct": 70}}, "f.toml", {"FOTO3D_DISK_WARN_FREE_MB": "512"})
    assert (cfg.warn_free_pct, cfg.warn_free_mb, cfg.warn_stream_pct, cfg.stream_share_pct) == (
        10,
        512,
        70,
        50,
    )
    with pytest.raises(ConfigError, match=r"f.toml \[disk\]: unknown key 'warn_free'"):
        SETTINGS.read({"disk": {"warn_free": 5}}, "f.toml", {})
    with pytest.raises(ConfigError, match="FOTO3D_DISK_STREAM_SHARE_PCT='0'"):
        SETTINGS.read({}, "f.toml", {"FOTO3D_DISK_STREAM_SHARE_PCT": "0"})
    with pytest.raises(ConfigError, match="warn_free_pct"):
        SETTINGS.read({"disk": {"warn_free_pct": 150}}, "f.toml", {})


def test_thresholds_name_what_is_over_them() -> None:
    cfg = DiskSettings(warn_free_pct=10, warn_stream_pct=80)
    from pathlib import Path

    fine = DiskUsage(Path("/d"), total=100 * MiB, free=50 * MiB)
    low = DiskUsage(Path("/d"), total=100 * MiB, free=5 * MiB)
    fills = [StreamFill("LOGS", 90 * MiB, 100 * MiB, 10), StreamFill("DEAD", 1, 100 * MiB, 1)]
    assert judge(cfg, fine, []) == []
    found = judge(cfg, low, fills)
    assert [f.key for f in found] == ["disk", "stream:LOGS"]
    assert "5 MiB free" in found[0].text and "LOGS is 90% full" in found[1].text
