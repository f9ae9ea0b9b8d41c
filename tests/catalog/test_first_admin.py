"""A first `up` that fails after creating `admin` does not lock everyone out."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from foto3d.libs.auth import UserStore
from foto3d.libs.config import Settings
from testkit.running import running_services

REPO = Path(__file__).resolve().parents[2]
PASSWORD_LINE = re.compile(r"staff user 'admin' has password (\S+) ")


def banner_password(lines: list[str]) -> str | None:
    found = [m.group(1) for line in lines if (m := PASSWORD_LINE.search(line))]
    return found[0] if found else None


async def catalog_banner(settings: Settings) -> list[str]:
    async with running_services(settings, ["catalog"], http=False) as rt:
        return [line for svc in rt.services for line in svc.banner()]


async def test_failed_first_up_keeps_the_admin_password_until_changed(settings: Settings) -> None:
    data = settings.data_dir
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOTO3D_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "foto3d.cli.main", "up", "--port", port, "--data", str(data)],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    users = UserStore.in_data_dir(data)
    assert await users.get("admin") is not None, "the failed start got as far as creating admin"
    # The failure says how the password is found again, on its one line.
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("foto3d: error: ") and "foto3d users passwd admin" in error
    assert "password" not in proc.stdout  # never printed by the failed start

    # The next start shows the generated password again, and it signs in.
    password = banner_password(await catalog_banner(settings))
    assert password and await users.authenticate("admin", password) is not None
    assert banner_password(await catalog_banner(settings)) == password  # again, until changed

    # Once changed, it is neither shown nor kept.
    await users.set_password("admin", "a new long passphrase")
    assert banner_password(await catalog_banner(settings)) is None
    assert not any(
        password in p.read_text(errors="ignore")
        for p in data.rglob("*")
        if p.is_file() and p.stat().st_size < 4096
    )
