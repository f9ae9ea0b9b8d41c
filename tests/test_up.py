"""`foto3d up` as a user runs it: a real process, the printed URLs, /healthz, Ctrl-C, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

FOTO3D = [sys.executable, "-m", "foto3d.cli.main"]


def start_up(data: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "FOTO3D_DATA": str(data)}
    env.pop("FOTO3D_NATS_URL", None)
    return subprocess.Popen(
        [*FOTO3D, "up", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    proc.kill()
    raise AssertionError(f"{needle!r} not printed; output:\n{''.join(lines)}")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_up_prints_urls_serves_healthz_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = start_up(data)
    try:
        lines = wait_for_line(proc, "Press Ctrl-C")
        dash = next(line.split()[-1] for line in lines if line.strip().startswith("dashboard"))
        health = get_json(dash.rstrip("/") + "/healthz")
        assert health["components"]["nats"]["state"] == "ok"
        endpoints = json.loads((data / "run" / "endpoints.json").read_text())
        assert endpoints["http_url"] == dash.rstrip("/")
        # a second `up` on the same folder is refused with a clear message
        second = subprocess.run(
            [*FOTO3D, "up", "--port", "0"],
            env={**os.environ, "FOTO3D_DATA": str(data)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2 and "already running" in second.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stopped cleanly" in out
    assert not (data / "run" / "endpoints.json").exists()
    # resume on the same folder
    proc = start_up(data)
    try:
        wait_for_line(proc, "Press Ctrl-C")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 0


def test_every_command_has_help() -> None:
    """Every command and subcommand explains itself in --help."""
    import argparse

    from foto3d.cli.main import build_parser

    def subcommands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    top = subcommands(build_parser())
    assert {"up", "serve", "schema", "logs", "run", "status", "submit", "jobs", "splat", "objects"} <= set(
        top
    )
    todo = [(f"foto3d {n}", p) for n, p in top.items()]
    while todo:
        name, p = todo.pop()
        assert p.description, f"`{name}` has no description for --help"
        for action in p._actions:
            if action.option_strings and action.help is None:
                raise AssertionError(f"`{name} {action.option_strings[0]}` has no help text")
        todo += [(f"{name} {n}", sp) for n, sp in subcommands(p).items()]


async def test_home_page_renders_in_chromium(page: Any, settings: Any) -> None:
    from testkit.running import running_services
    from testkit.signin import sign_in_browser

    async with running_services(settings, []) as rt:
        await sign_in_browser(page, settings, rt.http_url)
        await page.goto(rt.http_url + "/")
        assert await page.title() == "Overview · foto3d"
        assert await page.locator('[data-component="nats"] .badge').inner_text() == "OK"
