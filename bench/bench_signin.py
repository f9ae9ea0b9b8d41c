"""Sign-in guessing: how many passwords an attacker gets checked, measured against the policy.

Runs a dashboard (one instance, embedded-style nats-server) with the default ``[auth]``
limits and attacks it for ``--seconds`` with four strategies, each retrying the instant an
answer comes (no waiting for Retry-After: a real attacker would gain nothing by it):

- one address, one account (``admin``);
- one address spraying many accounts;
- 100 addresses (through the trusted proxy's ``X-Forwarded-For``) at one account;
- 100 addresses spraying many accounts.

Prints the checked attempts (answers 401) of each next to what the policy allows in the same
time (``Backoff.attempts_within``), and the policy's own figures for one hour.

    .venv/bin/python bench/bench_signin.py --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from foto3d.app.runtime import Runtime
from foto3d.libs.auth import AuthSettings, UserStore
from foto3d.libs.auth.throttle import Backoff
from foto3d.libs.config import Settings
from foto3d.libs.nats_server import NatsServer
from testkit.servers import free_port


async def attack(base: str, seconds: float, addresses: int, spray: bool) -> tuple[int, int]:
    """(checked, refused) attempts in ``seconds``: ``addresses`` clients, each one try at a time."""
    names = (f"user{i}" for i in itertools.count()) if spray else itertools.repeat("admin")
    checked = refused = 0
    stop = time.monotonic() + seconds

    async def client(ip: str, http: aiohttp.ClientSession) -> None:
        nonlocal checked, refused
        while time.monotonic() < stop:
            form = {"username": next(names), "password": "not-the-password"}
            async with http.post("/login", data=form, headers={"X-Forwarded-For": ip}) as r:
                await r.read()
                if r.status == 401:
                    checked += 1
                elif r.status == 429:
                    refused += 1
                else:
                    raise RuntimeError(f"unexpected answer {r.status}")

    async with aiohttp.ClientSession(base_url=base) as http:
        await asyncio.gather(*(client(f"198.51.100.{i + 1}", http) for i in range(addresses)))
    return checked, refused


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each attack")
    args = ap.parse_args()
    cfg = AuthSettings()
    account = Backoff(cfg.account_free_failures, cfg.lock_base_s, cfg.lock_max_s)
    address = Backoff(cfg.address_free_failures, cfg.lock_base_s, cfg.lock_max_s)
    print("policy: account", account, "address", address)
    for hours in (1, 24):
        s = hours * 3600.0
        print(
            f"policy, first {hours} h: one account {account.attempts_within(s)}, "
            f"one address spraying {address.attempts_within(s)}, "
            f"100 addresses spraying {100 * address.attempts_within(s)}"
        )
    rows = []
    for label, n, spray, allowed in (
        ("1 address, 1 account", 1, False, account.attempts_within(args.seconds)),
        ("1 address, many accounts", 1, True, address.attempts_within(args.seconds)),
        ("100 addresses, 1 account", 100, False, account.attempts_within(args.seconds)),
        ("100 addresses, many accounts", 100, True, 100 * address.attempts_within(args.seconds)),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            data.mkdir()
            server = NatsServer(store_dir=Path(tmp) / "nats", port=free_port()).start()
            try:
                settings = Settings.load(data_dir=data, nats=server.client_url, http_port=0)
                await UserStore.in_data_dir(data).add("admin", "the right passphrase", admin=True)
                rt = Runtime(settings, [server.client_url], [], http=True, http_port=0)
                await rt.start()
                try:
                    checked, refused = await attack(rt.http_url, args.seconds, n, spray)
                finally:
                    await rt.stop()
            finally:
                server.stop()
        rows.append((label, checked, refused, allowed))
        print(
            f"{label:<30} checked {checked:>5}  refused {refused:>7}  policy allows {allowed:>5}", flush=True
        )
    return 0 if all(c <= a for _, c, _, a in rows) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
