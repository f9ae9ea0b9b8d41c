"""The full-disk drill, run inside a private mount namespace (``unshare -m``) as root.

A small tmpfs holds the data folder of a real `foto3d up`; a filler file takes the
space, `foto3d run` ships N lines through the full disk, the filler is removed, and
the figures are printed as one JSON line: exit status, what was stored, what the
loss record reported, health along the way, alert mails.

    unshare -m python -m tests.app.diskfull_drill --lines 20000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.app.uphelpers import FOTO3D, endpoints, healthz, stored_messages, up_env, wait_until

MiB = 1024 * 1024
LOSS_RE = re.compile(r"(\d+) record\(s\) (?:dropped|lost)")


def fill(path: Path, leave_bytes: int) -> None:
    """Grow ``path`` until the volume has only ``leave_bytes`` free."""
    with open(path, "ab") as f:
        while True:
            free = shutil.disk_usage(path.parent).free
            if free <= leave_bytes:
                return
            f.write(b"\0" * min(MiB, free - leave_bytes))
            f.flush()
            os.fsync(f.fileno())


def records_of(data: Path, source_id: str) -> list[str]:
    """Every stored message of one source (the command's lines and `run`'s own records)."""
    path = data / "log_collector" / "logs.db"
    if not path.exists():
        return []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT message FROM logs WHERE source_id = ?", (source_id,)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()
    return [r[0] for r in rows]


def disk_state(base: str) -> str:
    _, report = healthz(base)
    return str(report["components"].get("disk", {}).get("state", "?"))


def mails(data: Path) -> list[str]:
    outbox = data / "notifier" / "outbox"
    return [p.read_text(errors="replace") for p in sorted(outbox.glob("*.eml"))] if outbox.exists() else []


def run_drill(size_mb: int, lines: int, hold_s: float, free_during_hold: bool) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="f3d-diskfull-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(root)], check=True)
    data = root / "data"
    out: dict[str, Any] = {
        "size_mb": size_mb,
        "lines": lines,
        "hold_s": hold_s,
        "free_during_hold": free_during_hold,
    }
    env = up_env(data, FOTO3D_DISK_WARN_FREE_PCT="25")
    up_log = Path(tempfile.mkstemp(prefix="f3d-diskfull-up-", suffix=".log")[1])
    with open(up_log, "w") as log_file:
        up = subprocess.Popen(
            [*FOTO3D, "up", "--port", "0"], stdout=log_file, stderr=subprocess.STDOUT, text=True, env=env
        )
    try:
        wait_until(lambda: "Press Ctrl-C" in up_log.read_text() or up.poll() is not None, 90, "up to start")
        if up.poll() is not None:
            raise RuntimeError(f"up exited: {up_log.read_text()[-2000:]}")
        base = endpoints(data)["http_url"]
        filler = root / "filler"
        out["disk_before"] = disk_state(base)
        # Warn before it happens: below the threshold, with room left to say so.
        fill(filler, int(size_mb * MiB * 0.15))
        wait_until(lambda: disk_state(base) == "degraded", 30, "/healthz to report the disk")
        wait_until(
            lambda: any("below the alert threshold" in m for m in mails(data)), 60, "the disk alert mail"
        )
        out["disk_alert_mailed"] = True
        # Then it happens.
        fill(filler, 256 * 1024)
        script = f"for i in range({lines}):\n    print(f'drill-{{i}}')\n"
        t0 = time.monotonic()
        run = subprocess.Popen(
            [*FOTO3D, "run", "--source", "drill", "--hold", str(hold_s), "--", sys.executable, "-c", script],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert run.stderr is not None
        first = run.stderr.readline()  # the "holding" line, or nothing when the command's end finds room
        out["run_held"] = "holding" in first
        out["health_while_full"] = healthz(base)[1]["status"]
        if free_during_hold:
            filler.unlink()  # space returns while `run` holds the records; nobody restarts anything
        run_rc = run.wait(timeout=300)
        rest = first + run.stderr.read()
        out["run_seconds"] = round(time.monotonic() - t0, 1)
        out["run_rc"] = run_rc
        out["run_traceback"] = "Traceback" in rest
        out["run_stderr_tail"] = rest[-600:]
        if not free_during_hold:
            filler.unlink()  # space returns only after `run` has ended

        def settled() -> bool:
            records = records_of(data, "drill")
            lines_got = [m for m in records if m.startswith("drill-")]
            losses = [m for m in records if LOSS_RE.search(m)]
            out["stored"], out["distinct"] = len(lines_got), len(set(lines_got))
            out["loss_reported"] = sum(int(n) for m in losses for n in LOSS_RE.findall(m))
            # `run` ships two records of its own around the command's lines.
            out["stored_all"] = len(records) - len(losses)
            return bool(out["stored_all"] + out["loss_reported"] >= lines + 2)

        try:
            wait_until(settled, 120, "every line stored or reported lost")
            out["settled"] = True
        except AssertionError:
            out["settled"] = False
        if out.get("loss_reported"):
            try:  # the notifier mails the loss record shortly after it is stored
                wait_until(lambda: any("dropped" in m for m in mails(data)), 60, "the loss mail")
            except AssertionError:
                pass
        out["loss_mailed"] = any("dropped" in m for m in mails(data))
        # Everything resumes: a new run after the space returned is stored in full.
        after = subprocess.run(
            [*FOTO3D, "run", "--source", "after", "--", sys.executable, "-c", "print('\\n'.join(f'after-{i}' for i in range(100)))"],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        out["after_rc"] = after.returncode
        try:
            wait_until(lambda: len(stored_messages(data, "after-%")) == 100, 60, "the records sent after")
            out["after_stored"] = 100
        except AssertionError:
            out["after_stored"] = len(stored_messages(data, "after-%"))
        try:
            wait_until(lambda: disk_state(base) == "ok", 30, "/healthz disk ok")
        except AssertionError:
            pass
        report = healthz(base)[1]
        out["health_after"] = report["status"]
        out["not_ok_after"] = {
            k: v.get("detail") for k, v in report["components"].items() if v.get("state") != "ok"
        }
        out["disk_after"] = disk_state(base)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()
                up.communicate()
        out["up_rc"] = up.returncode
        out["up_tracebacks"] = up_log.read_text().count("Traceback")
        out["up_log"] = str(up_log)
        nats_log = data / "nats" / "nats-server.log"
        if nats_log.exists():
            kept = up_log.with_suffix(".nats.log")
            shutil.copy(nats_log, kept)
            out["nats_log"] = str(kept)
        subprocess.run(["umount", "-l", str(root)], check=False)
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size-mb", type=int, default=48)
    p.add_argument("--lines", type=int, default=20_000)
    p.add_argument("--hold", type=float, default=30.0, help="foto3d run --hold")
    p.add_argument("--free-after-run", action="store_true", help="free the space only after `run` ended")
    a = p.parse_args()
    print(json.dumps(run_drill(a.size_mb, a.lines, a.hold, not a.free_after_run)), flush=True)


if __name__ == "__main__":
    main()
