"""Staff users in sqlite, passwords hashed with scrypt and a per-user salt.

The store is a small sqlite file under ``<data>/auth/`` shared by every service that
serves pages in the same data folder; writes are rare (adding a user), reads are one
indexed lookup per sign-in.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

# scrypt cost: ~50 ms per check on a small machine; enough to make offline guessing slow.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8


class UserError(ValueError):
    """Bad username or password (the message says which rule failed)."""


@dataclass(frozen=True)
class User:
    name: str
    display_name: str
    admin: bool


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if algo != "scrypt":
        return False
    digest = hashlib.scrypt(
        password.encode(),
        salt=bytes.fromhex(salt_hex),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(digest_hex) // 2,
    )
    return hmac.compare_digest(digest.hex(), digest_hex)


def validate_username(name: str) -> str:
    if not USERNAME_RE.match(name):
        raise UserError(
            f"user name {name!r} must be 1-64 lowercase letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    password TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
-- Which staff account a login name of the hosts acts as: the CLI records that account's name,
-- so a person's page and CLI actions carry one name (see account_for_login).
CREATE TABLE IF NOT EXISTS logins (
    login TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
"""


class UserStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> UserStore:
        folder = data_dir / "auth"
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder / "users.db")

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path)
        await db.executescript(SCHEMA)
        return db

    async def add(self, name: str, password: str, display_name: str = "", admin: bool = False) -> User:
        validate_username(name)
        if len(password) < MIN_PASSWORD:
            raise UserError(f"password must be at least {MIN_PASSWORD} characters")
        hashed = await asyncio.to_thread(hash_password, password)
        db = await self._connect()
        try:
            await db.execute(
                "INSERT INTO users(name, display_name, password, admin, created) VALUES (?, ?, ?, ?, ?)",
                (name, display_name or name, hashed, int(admin), time.time()),
            )
            await db.commit()
        except sqlite3.IntegrityError:
            raise UserError(f"user {name!r} already exists") from None
        finally:
            await db.close()
        return User(name, display_name or name, admin)

    async def set_password(self, name: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise UserError(f"password must be at least {MIN_PASSWORD} characters")
        hashed = await asyncio.to_thread(hash_password, password)
        db = await self._connect()
        try:
            cur = await db.execute("UPDATE users SET password=? WHERE name=?", (hashed, name))
            await db.commit()
            if cur.rowcount == 0:
                raise UserError(f"no user {name!r}")
        finally:
            await db.close()

    async def set_disabled(self, name: str, disabled: bool) -> None:
        db = await self._connect()
        try:
            cur = await db.execute("UPDATE users SET disabled=? WHERE name=?", (int(disabled), name))
            await db.commit()
            if cur.rowcount == 0:
                raise UserError(f"no user {name!r}")
        finally:
            await db.close()

    async def get(self, name: str) -> User | None:
        db = await self._connect()
        try:
            async with db.execute(
                "SELECT name, display_name, admin FROM users WHERE name=? AND disabled=0", (name,)
            ) as cur:
                row = await cur.fetchone()
        finally:
            await db.close()
        return User(row[0], row[1], bool(row[2])) if row else None

    async def list(self) -> list[tuple[User, bool, float]]:
        db = await self._connect()
        try:
            async with db.execute(
                "SELECT name, display_name, admin, disabled, created FROM users ORDER BY name"
            ) as cur:
                rows = await cur.fetchall()
        finally:
            await db.close()
        return [(User(r[0], r[1], bool(r[2])), bool(r[3]), float(r[4])) for r in rows]

    async def count(self) -> int:
        db = await self._connect()
        try:
            async with db.execute("SELECT count(*) FROM users") as cur:
                row = await cur.fetchone()
        finally:
            await db.close()
        return int(row[0]) if row else 0

    async def authenticate(self, name: str, password: str) -> User | None:
        db = await self._connect()
        try:
            async with db.execute(
                "SELECT name, display_name, admin, password FROM users WHERE name=? AND disabled=0", (name,)
            ) as cur:
                row = await cur.fetchone()
        finally:
            await db.close()
        if row is None:
            # spend the same time as a real check so user names cannot be probed by timing
            await asyncio.to_thread(hash_password, password)
            return None
        if not await asyncio.to_thread(verify_password, password, row[3]):
            return None
        return User(row[0], row[1], bool(row[2]))

    async def link_login(self, name: str, login: str) -> None:
        """Record that the host login ``login`` is the person with the account ``name`` (a login
        belongs to one account; linking it again moves it)."""
        if not login or len(login) > 256:
            raise UserError("a login name is 1-256 characters")
        db = await self._connect()
        try:
            async with db.execute("SELECT 1 FROM users WHERE name=?", (name,)) as cur:
                if await cur.fetchone() is None:
                    raise UserError(f"no user {name!r}")
            await db.execute(
                "INSERT INTO logins(login, name) VALUES (?, ?) ON CONFLICT(login) DO UPDATE SET name=excluded.name",
                (login, name),
            )
            await db.commit()
        finally:
            await db.close()

    async def logins(self) -> dict[str, str]:
        """login -> account name."""
        db = await self._connect()
        try:
            async with db.execute("SELECT login, name FROM logins ORDER BY login") as cur:
                return {str(r[0]): str(r[1]) for r in await cur.fetchall()}
        finally:
            await db.close()


def account_for_login(path: Path, login: str) -> str | None:
    """The staff account a host login acts as: the one linked to it, else an account of the same
    name; None when neither exists (or there is no user store here, e.g. a CLI on another host).

    Synchronous and read-only: the CLI asks once, before it connects to anything."""
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return None
    try:
        for query in (
            "SELECT name FROM logins WHERE login=?",
            "SELECT name FROM users WHERE name=? AND disabled=0",
        ):
            try:
                row = db.execute(query, (login,)).fetchone()
            except sqlite3.Error:  # an older store without the logins table, or one being created
                continue
            if row:
                return str(row[0])
        return None
    finally:
        db.close()
