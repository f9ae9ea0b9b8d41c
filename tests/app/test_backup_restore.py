"""`foto3d backup` while the services write, then `foto3d restore` after losing the databases:
the commands of docs/runbooks/backup-restore.md, run as the runbook says."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import threading
from pathlib import Path

from foto3d.app.up import DataDirLock
from foto3d.libs.bus.connection import Bus
from foto3d.libs.config import Settings
from foto3d.libs.logsdk.shipper import LogShipper
from foto3d.proto.gateway import TOKENS_ISSUE, TOKENS_LIST, CredentialKind, IssueRequest, ListRequest
from foto3d.proto.logs import LOG_QUERY, LogQuery
from foto3d.services.log_collector.service import LogCollector
from testkit.running import running_services
from testkit.waiting import eventually

FOTO3D = [sys.executable, "-m", "foto3d.cli.main"]
SERVICES = ["log_collector", "notifier", "queue", "token_gateway"]


async def foto3d(*args: str, timeout: float = 120) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *FOTO3D, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


def read(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


async def test_backup_during_writes_restores_every_committed_row(
    settings: Settings, bus: Bus, tmp_path: Path
) -> None:
    settings.raw["token_gateway"] = {"port": 0}
    data = settings.data_dir
    out = tmp_path / "backup-1"
    assert settings.nats_urls
    async with running_services(settings, SERVICES, http=False) as rt:
        collector = next(s for s in rt.services if isinstance(s, LogCollector))
        assert collector.store is not None
        store = collector.store
        stop = threading.Event()
        issued: list[str] = []
        shipper = LogShipper(
            "script", "writer", nats_urls=settings.nats_urls, spool_dir=tmp_path / "spool", heartbeat=False
        )

        def write_logs() -> None:
            i = 0
            while not stop.is_set():
                shipper.emit(20, f"burst record {i}", logger="test")
                i += 1
                if i % 200 == 0:
                    stop.wait(0.02)

        async def issue_tokens() -> None:
            while not stop.is_set():
                reply = await bus.call(
                    TOKENS_ISSUE,
                    IssueRequest(customer="acme", kind=CredentialKind.SECRET, label="backup test"),
                )
                issued.append(reply.credential.credential_id)

        writers = [asyncio.create_task(asyncio.to_thread(write_logs)), asyncio.create_task(issue_tokens())]
        try:
            await eventually(lambda: store.last_id > 2000 and len(issued) > 5, timeout=60, interval=0.1)
            # Committed before the backup starts: all of it must be in the backup.
            logs_committed = store.last_id
            creds_committed = list(issued)
            rc, text, err = await foto3d("backup", str(out), "--data", str(data))
            logs_after = store.last_id
            creds_after = len(issued)
        finally:
            stop.set()
            await asyncio.gather(*writers)
            await asyncio.to_thread(shipper.close, 5)
        assert rc == 0, err
        # The services kept writing while the backup ran.
        assert logs_after > logs_committed and creds_after > len(creds_committed)

    manifest = json.loads((out / "manifest.json").read_text())
    paths = {d["path"] for d in manifest["databases"]}
    assert {
        "log_collector/logs.db",
        "notifier/notifier.sqlite",
        "queue/jobs.sqlite",
        "token_gateway/gateway.sqlite",
    } <= paths, paths
    assert "backed up" in text and "log_collector/logs.db" in text

    # One snapshot per database: every committed row, no holes, the index in step with its rows.
    logs_db = out / "log_collector" / "logs.db"
    ((count, top),) = read(logs_db, "SELECT count(*), max(id) FROM logs")
    assert isinstance(count, int) and isinstance(top, int)
    assert count == top >= logs_committed
    ((words,),) = read(logs_db, "SELECT count(*) FROM logs_fts WHERE logs_fts MATCH 'burst'")
    ((rows,),) = read(logs_db, "SELECT count(*) FROM logs WHERE message LIKE 'burst record %'")
    assert isinstance(rows, int) and words == rows > 0
    creds = {
        str(r[0])
        for r in read(out / "token_gateway" / "gateway.sqlite", "SELECT credential_id FROM credentials")
    }
    assert set(creds_committed) <= creds

    # The disk is lost: every database goes.
    for rel in paths:
        for suffix in ("", "-wal", "-shm"):
            (data / (rel + suffix)).unlink(missing_ok=True)

    # Restore refuses while `foto3d up` holds the data folder.
    with DataDirLock(data):
        rc, _, err = await foto3d("restore", str(out), "--data", str(data))
    assert rc != 0 and "stopped" in err

    rc, text, err = await foto3d("restore", str(out), "--data", str(data))
    assert rc == 0, err
    assert f"restored {len(paths)} database(s)" in text

    async with running_services(settings, SERVICES, http=False):
        listed = await bus.call(TOKENS_LIST, ListRequest(customer="acme"))
        assert set(creds_committed) <= {c.credential_id for c in listed.credentials}
        found = await bus.call(LOG_QUERY, LogQuery(text="burst", limit=5))
        assert found.records


async def test_restore_refuses_a_damaged_backup(settings: Settings, tmp_path: Path) -> None:
    db = settings.data_dir / "catalog" / "catalog.db"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    out = tmp_path / "b"
    rc, _, err = await foto3d("backup", str(out), "--data", str(settings.data_dir))
    assert rc == 0, err
    rc, _, err = await foto3d("backup", str(out), "--data", str(settings.data_dir))
    assert rc != 0 and "not empty" in err
    copy = out / "catalog" / "catalog.db"
    copy.write_bytes(copy.read_bytes()[:-10] + b"x" * 10)
    rc, _, err = await foto3d("restore", str(out), "--data", str(settings.data_dir))
    assert rc != 0 and "does not match the manifest" in err
