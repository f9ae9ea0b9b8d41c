"""What a person can mistype gets one readable line and a non-zero exit: no traceback, no hang.

Every case runs the real `foto3d` in a subprocess with an empty data folder, the way a
user meets it. Cases that need nothing running go first; those that need a dead NATS
URL run side by side (each waits the CLI's connect timeout); a few need a live system.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from foto3d.cli.common import CLI_CONNECT_TIMEOUT_S
from foto3d.libs.bus.connection import CREDS_ENV
from foto3d.libs.config import Settings
from testkit.identities import creds_for
from testkit.running import running_services
from testkit.servers import free_port

REPO = Path(__file__).resolve().parents[1]
# argparse says "foto3d logs: error: ...", our own code "foto3d: error: ...".
ERROR_LINE = re.compile(r"^foto3d( [\w-]+)*: error: \S.*$")


def cli_env(data: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    env["FOTO3D_DATA"] = str(data)
    env.update(extra or {})
    return env


def spawn(args: list[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "foto3d.cli.main", *args],
        cwd=REPO,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        argv = proc.args if isinstance(proc.args, list) else [proc.args]
        pytest.fail(f"`{' '.join(map(str, argv))}` still running after {timeout}s: {err[-500:]}")
    return proc.returncode, out, err


def assert_one_line_error(args: list[str], rc: int, err: str, expect: str | None = None) -> None:
    shown = f"`foto3d {' '.join(args)}` (rc={rc}):\n{err}"
    assert rc != 0, f"exit 0 for bad input: {shown}"
    assert "Traceback" not in err, f"traceback: {shown}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, f"no message: {shown}"
    assert ERROR_LINE.match(lines[-1]), f"last line is not a `foto3d: error: ...` line: {shown}"
    if expect is not None:
        assert expect.lower() in lines[-1].lower(), f"expected {expect!r} in the message: {shown}"


@pytest.fixture
def empty_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    return data


@pytest.fixture
def bad_toml(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text("[notifier\nsmtp_url = \n")
    return path


# (arguments, a word the message must contain or None); {tmp} is the test's tmp folder.
NO_SYSTEM_CASES: list[tuple[list[str], str | None]] = [
    (["bogus"], "invalid choice"),
    (["up", "--port", "abc"], "invalid int"),
    (["up", "--port", "99999"], "65535"),
    (["up", "--data", "{tmp}/afile"], "not a folder"),
    (["up", "--data", "/proc/foto3d-cannot-exist/x"], "cannot create data folder"),
    (["serve", "nosuch"], "unknown service"),
    (["status"], "no running foto3d"),
    (["status", "--nats", "localhost:4222"], "needs a scheme"),
    (["status", "--nats", "http://127.0.0.1:4222"], "nats://"),
    (["status", "--nats", "nats://[::1"], "cannot be read"),
    (["status", "--nats", "nats://127.0.0.1:port"], "cannot be read"),
    (["status", "--watch", "abc"], "invalid float"),
    (["status", "--data", "{tmp}/afile"], "not a folder"),
    (["logs", "--since", "yesterday-ish"], "cannot read time"),
    (["logs", "--until", "2026-13-45"], "cannot read time"),
    (["logs", "--level", "loud"], "unknown log level"),
    (["logs", "-n", "0"], "--limit"),
    (["logs"], "no running foto3d"),
    (["run"], "no command given"),
    (["run", "--nats", "localhost:4222", "--", "true"], "needs a scheme"),
    (["cancel", "j-1"], "no running foto3d"),
    (["submit"], "required"),
    (["submit", "--object", "acme-chair-001", "--dataset", "{tmp}", "--steps", "abc"], "invalid int"),
    (["publish", "acme-chair-001"], "no running foto3d"),
    (["objects"], "required"),
    (["objects", "list"], "no running foto3d"),
    (["schema", "-o", "/proc/foto3d-cannot-exist/schemas"], "cannot write"),
    (["splat", "info", "{tmp}/missing.ply"], "no such file"),
    (["splat", "info", "{tmp}/afile"], "unknown splat format"),
    (["splat", "convert", "{tmp}/missing.ply", "-o", "{tmp}/out.zzz"], "output format"),
    (["splat", "reduce", "{tmp}/missing.ply", "-o", "{tmp}/r.ply", "--keep", "5"], "fraction"),
    (["users", "add", "bad name!"], "user name"),
]


def case_id(args: list[str]) -> str:
    return " ".join(args)


@pytest.fixture(scope="module")
def no_system_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[str], int, str]]:
    """Run every no-system case once, a few at a time (each is mostly interpreter start-up)."""
    tmp = tmp_path_factory.mktemp("cli")
    data = tmp / "data"
    data.mkdir()
    (tmp / "afile").write_text("not a folder, not a splat\n")

    def one(args: list[str]) -> tuple[list[str], int, str]:
        argv = [a.replace("{tmp}", str(tmp)) for a in args]
        rc, _, err = finish(spawn(argv, cli_env(data)), timeout=30)
        return argv, rc, err

    with ThreadPoolExecutor(max_workers=max(2, min(6, os.cpu_count() or 2))) as pool:
        results = list(pool.map(one, [args for args, _ in NO_SYSTEM_CASES]))
    return {case_id(args): res for (args, _), res in zip(NO_SYSTEM_CASES, results, strict=True)}


@pytest.mark.parametrize(("args", "expect"), NO_SYSTEM_CASES, ids=[case_id(a) for a, _ in NO_SYSTEM_CASES])
def test_bad_input_without_a_system(
    args: list[str], expect: str | None, no_system_results: dict[str, tuple[list[str], int, str]]
) -> None:
    argv, rc, err = no_system_results[case_id(args)]
    assert_one_line_error(argv, rc, err, expect)


@pytest.mark.parametrize(
    "args",
    [["status"], ["run", "--", "true"], ["up", "--port", "0"]],
    ids=lambda a: " ".join(a),
)
def test_corrupt_config_file_names_the_file_and_the_place(
    args: list[str], empty_data: Path, bad_toml: Path
) -> None:
    rc, _, err = finish(spawn(args, cli_env(empty_data, {"FOTO3D_CONFIG": str(bad_toml)})), timeout=20)
    assert_one_line_error(args, rc, err, str(bad_toml))
    assert "line 1" in err


def test_missing_config_file_given_by_flag(empty_data: Path, tmp_path: Path) -> None:
    args = ["status", "--config", str(tmp_path / "nope.toml")]
    rc, _, err = finish(spawn(args, cli_env(empty_data)), timeout=20)
    assert_one_line_error(args, rc, err, "does not exist")


def test_a_dead_nats_url_fails_within_seconds(empty_data: Path) -> None:
    """Nothing listens: every command that needs the bus gives up after its connect timeout."""
    dead = f"nats://127.0.0.1:{free_port()}"
    commands = [
        ["status"],
        ["logs"],
        ["jobs"],
        ["job", "j-1"],
        ["cancel", "j-1"],
        ["submit", "--object", "acme-chair-001", "--dataset", str(empty_data)],
        ["objects", "list"],
        ["publish", "acme-chair-001"],
    ]
    started = time.monotonic()
    argvs = [[*args, "--nats", dead] for args in commands]
    procs = [(argv, spawn(argv, cli_env(empty_data))) for argv in argvs]
    # The connect timeout, plus eight interpreters starting at once on a loaded machine: what this
    # rules out is a command that retries forever, not a slow start.
    limit = CLI_CONNECT_TIMEOUT_S + 45
    for args, proc in procs:
        rc, _, err = finish(proc, timeout=max(1.0, limit - (time.monotonic() - started)))
        assert_one_line_error(args, rc, err, "cannot reach NATS")
    assert time.monotonic() - started < limit


def test_run_without_nats_still_runs_the_command_and_keeps_its_status(empty_data: Path) -> None:
    """`foto3d run` must not lose the user's work because the log server is away."""
    dead = f"nats://127.0.0.1:{free_port()}"
    args = ["run", "--nats", dead, "--", sys.executable, "-c", "print('hello'); raise SystemExit(3)"]
    rc, out, err = finish(spawn(args, cli_env(empty_data)), timeout=20)
    assert rc == 3
    assert "hello" in out
    assert "Traceback" not in err
    assert "spool" in err
    assert any((empty_data / "log-spool").iterdir())


async def test_bad_input_against_a_running_system(settings: Settings, tmp_path: Path) -> None:
    """Requests the services refuse come back as one line each, with the service's reason."""
    data = tmp_path / "cli-data"
    data.mkdir()
    assert settings.nats_urls
    env = cli_env(data, {"FOTO3D_NATS_URL": settings.nats_urls[0], CREDS_ENV: str(creds_for("staff"))})
    cases: list[tuple[list[str], str]] = [
        (["job", "j-nonexistent"], "j-nonexistent"),
        (["cancel", "j-nonexistent"], "j-nonexistent"),
        (["submit", "--object", "Not An Id", "--dataset", str(tmp_path)], "naming standard"),
        (["submit", "--object", "acme-chair-001", "--dataset", str(tmp_path / "missing")], "does not exist"),
        (["submit", "--object", "acme-chair-001", "--dataset", str(tmp_path), "--steps", "5"], "steps"),
        (["objects", "customer-add", "Bad Slug!"], "customer id"),
        (["objects", "register", "--customer", "nobody", "--name", "Chair"], "unknown customer"),
        (["objects", "show", "acme-nothing-001"], "acme-nothing-001"),
        (["publish", "acme-nothing-001"], "acme-nothing-001"),
        (["logs", "--level", "loud"], "unknown log level"),
    ]
    async with running_services(settings, ["log_collector", "queue", "catalog", "publisher"], http=False):
        # submit trains registered objects only: register acme-chair-001 so the queue's checks are reached
        for setup in (
            ["objects", "customer-add", "acme"],
            ["objects", "register", "--customer", "acme", "--name", "Chair"],
        ):
            rc, _, err = await asyncio.to_thread(finish, spawn(setup, env), 30)
            assert rc == 0, err
        procs = [(args, spawn(args, env)) for args, _ in cases]
        for (args, proc), (_, expect) in zip(procs, cases, strict=True):
            # the services answer on this event loop: wait for the CLI off it
            rc, _, err = await asyncio.to_thread(finish, proc, 30)
            assert_one_line_error(args, rc, err, expect)


def test_up_on_a_taken_port_says_so_and_leaves_nothing_running(empty_data: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        args = ["up", "--port", port]
        rc, _, err = finish(spawn(args, cli_env(empty_data)), timeout=60)
    assert_one_line_error(args, rc, err, "pick another with --port")
    assert not (empty_data / "run" / "endpoints.json").exists(), "a failed up must not advertise itself"


def test_up_refuses_nats_flag_it_would_ignore(tmp_path: Path) -> None:
    """`up` always runs its own server; a --nats flag would otherwise be silently ignored."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "foto3d.cli.main",
            "up",
            "--data",
            str(tmp_path),
            "--nats",
            "nats://127.0.0.1:4222",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "--nats does not apply to `foto3d up`" in r.stderr
    assert "Traceback" not in r.stderr


async def test_a_silent_service_is_named_in_one_line(settings: Settings, tmp_path: Path) -> None:
    """NATS is up but no service answers: each command family names the service it waited for,
    in one line, with its exit status (the queue's commands 1, like `submit`; the others 2); a
    request the command itself refuses says "bad request"."""
    data = tmp_path / "cli-data"
    data.mkdir()
    assert settings.nats_urls
    env = cli_env(data, {"FOTO3D_NATS_URL": settings.nats_urls[0], CREDS_ENV: str(creds_for("staff"))})
    cases: list[tuple[list[str], str, int]] = [
        (["jobs"], "no queue service is running", 1),
        (["cancel", "j-1"], "no queue service is running", 1),
        (["objects", "list"], "the catalog service is not running", 2),
        (["objects", "show", "acme-chair-001"], "the catalog service is not running", 2),
        (["webhooks", "list"], "the catalog service is not running", 2),
        (["webhooks", "add", "acme", "not a url"], "bad request", 2),
        (["subscriptions", "list"], "the catalog service is not running", 2),
        (["tokens", "list"], "the token gateway does not answer", 2),
    ]
    procs = [(args, spawn(args, env)) for args, _, _ in cases]
    for (args, proc), (_, expect, code) in zip(procs, cases, strict=True):
        rc, _, err = await asyncio.to_thread(finish, proc, 30)
        assert_one_line_error(args, rc, err, expect)
        assert rc == code, f"`foto3d {' '.join(args)}` exited {rc}, not {code}: {err}"
