"""The agent's status file under writers that overlap (a worker-thread write and the final one)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from foto3d.proto.rig import LinkState, RigStatus
from foto3d.rig.status import read_status, remove_stale_temporaries, status_path, write_status


def test_overlapping_writes_all_land_and_leave_no_temporary_files(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def writer(n: int) -> None:
        start.wait()
        for i in range(300):
            try:
                write_status(
                    tmp_path,
                    RigStatus(
                        rig_id="rig-a",
                        ts=time.time(),
                        link=LinkState.ONLINE,
                        since=0,
                        forwarded_logs=n * 1000 + i,
                        agent_pid=os.getpid(),
                    ),
                )
            except BaseException as e:  # reported below, every one
                errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    st = read_status(tmp_path, "rig-a")
    assert st.forwarded_logs % 1000 == 299  # some writer's last write, whole
    assert sorted(p.name for p in status_path(tmp_path).parent.iterdir()) == ["status.json"]


def test_temporaries_left_by_a_killed_write_are_removed_and_a_live_one_is_not(tmp_path: Path) -> None:
    run = status_path(tmp_path).parent
    run.mkdir(parents=True)
    old, fresh = run / "status.abc.tmp", run / "status.def.tmp"
    old.write_bytes(b"{")
    fresh.write_bytes(b"{")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    remove_stale_temporaries(tmp_path)
    assert not old.exists() and fresh.exists()
