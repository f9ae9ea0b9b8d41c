"""How long a dashboard that starts with an empty folder takes to know every staff account.

Fills a fresh nats-server's ``AUTH_ACCOUNTS`` with ``--accounts`` accounts and one live session
each, then times :meth:`SharedUsers.start` (the fold's catch-up and the upgrade check) on an empty
folder, three times.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_staff_accounts.py --accounts 5000
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path

import msgspec

from foto3d.app.topology import assemble
from foto3d.libs.auth.shared_users import SharedUsers, account_key
from foto3d.libs.auth.users import hash_password, session_hash
from foto3d.libs.bus.connection import connect
from foto3d.libs.bus.topology import provision
from foto3d.libs.nats_server import NatsServer
from foto3d.proto import subjects
from foto3d.proto.staff_accounts import StaffAccountAdded, StaffSessionStarted
from testkit.servers import free_port


async def main(accounts: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-staff-"))
    server = NatsServer(store_dir=root / "nats", port=free_port()).start()
    try:
        bus = await connect([server.client_url], "bench-staff")
        await provision(bus.js, assemble())
        hashed = hash_password("correct horse battery")
        now = time.time()
        for i in range(accounts):
            name = f"user{i}"
            added = StaffAccountAdded(
                account=name, display_name=name, password_hash=hashed, created=now, at=now
            )
            await bus.js.publish(subjects.auth_account(account_key(name)), msgspec.json.encode(added))
            sid = session_hash(secrets.token_hex(8))
            started = StaffSessionStarted(account=name, session_hash=sid, expires_at=now + 3600, at=now)
            await bus.js.publish(subjects.auth_session(sid), msgspec.json.encode(started))
        for run in range(3):
            folder = root / f"empty{run}"
            folder.mkdir()
            users = SharedUsers(folder / "users.db", bus)
            t = time.perf_counter()
            await users.start()
            took = time.perf_counter() - t
            print(
                f"{accounts} accounts + {accounts} sessions: an empty instance knew "
                f"{await users.count()} accounts after {took:.2f} s"
            )
            await users.stop()
        await bus.close()
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=5000)
    asyncio.run(main(parser.parse_args().accounts))
