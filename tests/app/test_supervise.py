"""`foto3d up` supervises its nats-server: never two on one store, restarted on the same port,
and log records of running and ended producers all arrive, once each."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from foto3d.app.embedded_nats import PREFERRED_PORT, choose_port, remember_port
from foto3d.libs.logsdk.shipper import LogShipper
from foto3d.libs.nats_server import NatsServer
from testkit.servers import free_port
from tests.app.uphelpers import (
    FOTO3D,
    alive,
    endpoints,
    healthz,
    running_up,
    server_pid,
    servers_on_store,
    stored_messages,
    up_env,
    wait_until,
)

BURST = 3000


def start_producer(data: Path, nats_url: str, tag: str, lines: int = BURST) -> subprocess.Popen[str]:
    """`foto3d run` around a script printing ``lines`` lines over a few seconds."""
    script = f"import time\nfor i in range({lines}):\n    print(f'{tag}-{{i}}', flush=True)\n    time.sleep(0.002)\n"
    return subprocess.Popen(
        [*FOTO3D, "run", "--nats", nats_url, "--source", tag, "--", "python3", "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=up_env(data, FOTO3D_LOG_SPOOL=str(data / "log-spool")),
    )


def all_stored_once(data: Path, tag: str, n: int) -> bool:
    got = stored_messages(data, f"{tag}-%")
    assert len(got) == len(set(got)), f"duplicates: {len(got) - len(set(got))}"
    return len(got) == n


def test_port_choice_prefers_the_remembered_port_then_4222(tmp_path: Path) -> None:
    store = tmp_path / "nats"
    store.mkdir()
    port = free_port()
    remember_port(store, port)
    assert choose_port(store, "127.0.0.1") == port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        assert choose_port(store, "127.0.0.1") in (PREFERRED_PORT, -1)
    remember_port(store, 0)  # nonsense in the file: ignored
    assert choose_port(store, "127.0.0.1") in (PREFERRED_PORT, -1)


def test_killed_embedded_server_comes_back_on_the_same_port_and_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_up(data):
        ep = endpoints(data)
        url = ep["nats_url"]
        assert url.endswith(f":{(data / 'nats' / 'client.port').read_text().strip()}")
        first = server_pid(data)
        producer = start_producer(data, url, "restart")
        wait_until(lambda: len(stored_messages(data, "restart-%")) >= 200, 60, "the first records stored")
        os.kill(first, signal.SIGKILL)
        took = wait_until(
            lambda: (
                healthz(ep["http_url"])[0] == 200 and server_pid(data) != first and alive(server_pid(data))
            ),
            30,
            "the server restarted and /healthz ok",
        )
        assert took < 10, f"restart took {took:.1f}s"
        assert endpoints(data)["nats_url"] == url  # the same port: every client reconnects by itself
        assert servers_on_store(data) == [server_pid(data)]
        assert producer.wait(120) == 0, producer.stderr.read() if producer.stderr else ""
        wait_until(lambda: all_stored_once(data, "restart", BURST), 60, f"{BURST} records stored")
        status, report = healthz(ep["http_url"])
        assert status == 200, report
        assert report["components"]["embedded_nats"]["state"] == "ok", report
    # A normal restart of `up` keeps the port too.
    with running_up(data):
        assert endpoints(data)["nats_url"] == url


def test_kill_9_of_ups_group_leaves_no_server_and_the_next_up_runs_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_up(data) as first_up:
        url = endpoints(data)["nats_url"]
        orphan = server_pid(data)
        producer = start_producer(data, url, "group")
        wait_until(lambda: len(stored_messages(data, "group-%")) >= 200, 60, "the first records stored")
        os.killpg(first_up.pid, signal.SIGKILL)
        first_up.wait(10)
        # The server dies with `up` (the kernel tells it), it is not left serving the producer.
        wait_until(lambda: not alive(orphan), 15, "the embedded server to end with `up`")
    with running_up(data):
        assert endpoints(data)["nats_url"] == url
        assert servers_on_store(data) == [server_pid(data)]
        # The producer kept running through it all; it spooled and now drains by itself.
        assert producer.wait(120) == 0, producer.stderr.read() if producer.stderr else ""
        wait_until(lambda: all_stored_once(data, "group", BURST), 60, f"{BURST} records stored")


def test_a_server_left_on_the_store_is_stopped_before_up_starts_its_own(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # What an older `up` killed with SIGKILL left behind: a server on the store, no parent.
    port = free_port()
    stray = NatsServer(store_dir=data / "nats", port=port).start()
    remember_port(data / "nats", port)  # it even holds the port this folder's `up` uses
    assert stray.pid is not None
    try:
        with running_up(data):
            assert stray.proc is not None and stray.proc.wait(20) is not None
            assert servers_on_store(data) == [server_pid(data)]
            assert server_pid(data) != stray.pid
            assert endpoints(data)["nats_url"].endswith(f":{port}")
    finally:
        stray.stop()


def test_spool_of_an_ended_process_is_drained_by_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    spool = data / "log-spool"
    dead_port = free_port()  # nothing listens: the producer spools everything
    shipper = LogShipper("script", "ended", nats_urls=[f"nats://127.0.0.1:{dead_port}"], spool_dir=spool)
    for i in range(500):
        shipper.emit(20, f"ended-{i}")
    assert not shipper.close(timeout=5)  # not delivered: all of it is on disk
    files = list((spool / "batches").glob("*.batch"))
    assert files
    old = time.time() - 3600
    for f in files:
        os.utime(f, (old, old))
    with running_up(data):
        wait_until(lambda: all_stored_once(data, "ended", 500), 60, "the ended process's 500 records")
        wait_until(lambda: not list((spool / "batches").glob("*.batch")), 30, "an empty spool")
