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
from typing import Any

import aiosqlite

from foto3d.libs.auth.passwords import password_problem
from foto3d.libs.auth.totp import accepted_step
from foto3d.proto.account_sessions import SessionStartedFields

# scrypt cost: ~50 ms per check on a small machine; enough to make offline guessing slow.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


class UserError(ValueError):
    """Bad username or password (the message says which rule failed)."""


@dataclass(frozen=True)
class User:
    name: str
    display_name: str
    admin: bool
    # Must choose a new password before doing anything else (the generated first admin's).
    must_change: bool = False
    # Signs in with a one-time code from an authenticator app too.
    totp: bool = False


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


def check_password(password: str, user: str = "") -> None:
    problem = password_problem(password, user)
    if problem:
        raise UserError(problem)


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
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    created REAL NOT NULL,
    seen REAL NOT NULL,
    expires REAL NOT NULL,
    address TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(user);
CREATE TABLE IF NOT EXISTS known_addresses (
    user TEXT NOT NULL,
    address TEXT NOT NULL,
    first REAL NOT NULL,
    last REAL NOT NULL,
    PRIMARY KEY (user, address)

);
-- Which staff account a login name of the hosts acts as: the CLI records that account's name,
-- so a person's page and CLI actions carry one name (see account_for_login).
CREATE TABLE IF NOT EXISTS logins (
    login TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
"""
# Columns added after the first release, with their definitions (added to older files on open).
LATER_COLUMNS = {
    "must_change": "INTEGER NOT NULL DEFAULT 0",
    "totp_secret": "TEXT NOT NULL DEFAULT ''",
    "totp_step": "INTEGER NOT NULL DEFAULT 0",
    "email": "TEXT NOT NULL DEFAULT ''",
}
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
USER_COLUMNS = "name, display_name, admin, must_change, totp_secret != ''"


def _user(row: Any) -> User:
    return User(row[0], row[1], bool(row[2]), bool(row[3]), bool(row[4]))


def session_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


# A session's "last seen" is written at most this often (not on every request).
SEEN_EVERY_S = 300.0


@dataclass(frozen=True)
class Session:
    id: str
    user: str
    created: float
    seen: float
    expires: float
    address: str
    user_agent: str


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
        async with db.execute("PRAGMA table_info(users)") as cur:
            have = {r[1] for r in await cur.fetchall()}
        for column, definition in LATER_COLUMNS.items():
            if column not in have:
                await db.execute(f"ALTER TABLE users ADD COLUMN {column} {definition}")
        return db

    async def add(
        self, name: str, password: str, display_name: str = "", admin: bool = False, must_change: bool = False
    ) -> User:
        hashed = await self.new_account_hash(name, password)
        db = await self._connect()
        try:
            await db.execute(
                "INSERT INTO users(name, display_name, password, admin, created, must_change) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (name, display_name or name, hashed, int(admin), time.time(), int(must_change)),
            )
            await db.commit()
        except sqlite3.IntegrityError:
            raise UserError(f"user {name!r} already exists") from None
        finally:
            await db.close()
        return User(name, display_name or name, admin, must_change)

    @staticmethod
    async def new_account_hash(name: str, password: str) -> str:
        """The hash a new account ``name`` keeps of ``password``, once both pass the rules."""
        validate_username(name)
        check_password(password, name)
        return await asyncio.to_thread(hash_password, password)

    async def set_password(self, name: str, password: str, keep_session: str = "") -> None:
        """A new password; every session of the user ends but ``keep_session`` (the one that
        changed it), so whoever knew the old password is signed out too."""
        check_password(password, name)
        hashed = await asyncio.to_thread(hash_password, password)
        db = await self._connect()
        try:
            cur = await db.execute("UPDATE users SET password=?, must_change=0 WHERE name=?", (hashed, name))
            if cur.rowcount == 0:
                raise UserError(f"no user {name!r}")
            await db.execute(
                "DELETE FROM sessions WHERE user=? AND id!=?",
                (name, session_hash(keep_session) if keep_session else ""),
            )
            await db.commit()
        finally:
            await db.close()

    # ---- sessions: one row per sign-in, so a sign-in can be listed and ended -------------
    # A session is kept (and listed) by the SHA-256 of its id: the file (or a stream carrying
    # it, shared_users.py) holds nothing a cookie could be made of.

    async def open_session(
        self, name: str, lifetime_s: float, address: str = "", user_agent: str = ""
    ) -> str:
        sid = secrets.token_urlsafe(16)
        now = time.time()
        db = await self._connect()
        try:
            await db.execute("DELETE FROM sessions WHERE expires < ?", (now,))
            await db.execute(
                "INSERT INTO sessions(id, user, created, seen, expires, address, user_agent) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_hash(sid), name, now, now, now + lifetime_s, address[:64], user_agent[:300]),
            )
            await db.commit()
        finally:
            await db.close()
        return sid

    async def session_user(self, sid: str, name: str) -> User | None:
        """The enabled user of a live session, else None (ended, expired, or someone else's)."""
        now = time.time()
        sid = session_hash(sid)
        db = await self._connect()
        try:
            async with db.execute(
                "SELECT u.name, u.display_name, u.admin, u.must_change, u.totp_secret != '', s.seen "
                "FROM sessions s JOIN users u ON u.name = s.user "
                "WHERE s.id=? AND s.user=? AND s.expires>? AND u.disabled=0",
                (sid, name, now),
            ) as cur:
                row = await cur.fetchone()
            if row is not None and now - float(row[5]) > SEEN_EVERY_S:
                await db.execute("UPDATE sessions SET seen=? WHERE id=?", (now, sid))
                await db.commit()
        finally:
            await db.close()
        return _user(row) if row else None

    async def sessions(self, name: str | None = None) -> list[Session]:
        db = await self._connect()
        try:
            async with db.execute(
                "SELECT id, user, created, seen, expires, address, user_agent FROM sessions "
                "WHERE expires>? AND (? IS NULL OR user=?) ORDER BY user, created DESC",
                (time.time(), name, name),
            ) as cur:
                rows = await cur.fetchall()
        finally:
            await db.close()
        return [Session(r[0], r[1], float(r[2]), float(r[3]), float(r[4]), r[5], r[6]) for r in rows]

    async def end_sessions(self, name: str, sid: str | None = None, keep: str = "") -> int:
        """End one session of ``name`` (``sid``), or all of them but ``keep``; how many ended."""
        return await self.end_stored_sessions(
            name, session_hash(sid) if sid is not None else None, session_hash(keep) if keep else ""
        )

    def stored_session_id(self, sid: str) -> str:
        """How a session id (the cookie's) is kept in the store, and listed by :meth:`sessions`."""
        return session_hash(sid)

    async def end_stored_sessions(self, name: str, stored_id: str | None = None, keep: str = "") -> int:
        """:meth:`end_sessions` by ids as :meth:`sessions` lists them (``foto3d users sessions``)."""
        sid = stored_id
        db = await self._connect()
        try:
            if sid is not None:
                cur = await db.execute("DELETE FROM sessions WHERE user=? AND id=?", (name, sid))
            else:
                cur = await db.execute("DELETE FROM sessions WHERE user=? AND id!=?", (name, keep))
            await db.commit()
            return int(cur.rowcount)
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
                f"SELECT {USER_COLUMNS} FROM users WHERE name=? AND disabled=0", (name,)
            ) as cur:
                row = await cur.fetchone()
        finally:
            await db.close()
        return _user(row) if row else None

    async def list(self) -> list[tuple[User, bool, float]]:
        db = await self._connect()
        try:
            async with db.execute(
                f"SELECT {USER_COLUMNS}, disabled, created FROM users ORDER BY name"
            ) as cur:
                rows = await cur.fetchall()
        finally:
            await db.close()
        return [(_user(r), bool(r[5]), float(r[6])) for r in rows]

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
                f"SELECT {USER_COLUMNS}, password FROM users WHERE name=? AND disabled=0", (name,)
            ) as cur:
                row = await cur.fetchone()
        finally:
            await db.close()
        if row is None:
            # spend the same time as a real check so user names cannot be probed by timing
            await asyncio.to_thread(hash_password, password)
            return None
        if not await asyncio.to_thread(verify_password, password, row[5]):
            return None
        return _user(row)

    # ---- where people sign in from ------------------------------------------------------

    async def set_email(self, name: str, email: str) -> None:
        """The address mails about the account go to (empty: none)."""
        if email and not EMAIL_RE.match(email):
            raise UserError(f"{email!r} is not a mail address")
        db = await self._connect()
        try:
            cur = await db.execute("UPDATE users SET email=? WHERE name=?", (email, name))
            await db.commit()
            if cur.rowcount == 0:
                raise UserError(f"no user {name!r}")
        finally:
            await db.close()

    async def note_address(self, name: str, address: str) -> tuple[bool, str]:
        """Record a sign-in of ``name`` from ``address``: (whether it is new for a user who signed
        in from elsewhere before, the user's mail address)."""
        now = time.time()
        db = await self._connect()
        try:
            async with db.execute("SELECT email FROM users WHERE name=?", (name,)) as cur:
                row = await cur.fetchone()
            async with db.execute(
                "SELECT address = ? FROM known_addresses WHERE user=? ORDER BY address = ? DESC LIMIT 1",
                (address, name, address),
            ) as cur:
                known = await cur.fetchone()
            await db.execute(
                "INSERT INTO known_addresses(user, address, first, last) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(user, address) DO UPDATE SET last=excluded.last",
                (name, address, now, now),
            )
            await db.commit()
        finally:
            await db.close()
        # The very first sign-in is no news; one from an address not seen before is.
        return (known is not None and not known[0]), (str(row[0]) if row else "")

    # ---- one-time codes (TOTP) -----------------------------------------------------------

    async def totp_secret(self, name: str) -> tuple[str, int]:
        """(secret, last accepted step); the secret is empty when the user has no TOTP."""
        db = await self._connect()
        try:
            async with db.execute("SELECT totp_secret, totp_step FROM users WHERE name=?", (name,)) as cur:
                row = await cur.fetchone()
        finally:
            await db.close()
        return (str(row[0]), int(row[1])) if row else ("", 0)

    async def check_code(self, name: str, code: str, secret: str | None = None) -> bool:
        """Whether ``code`` is a fresh right code of the user's secret (or of ``secret``, while
        enrolling); a right one is used up (its step is remembered: no replay)."""
        stored, last = await self.totp_secret(name)
        key = secret if secret is not None else stored
        if not key:
            return False
        step = accepted_step(key, code, last)
        if step is None:
            return False
        db = await self._connect()
        try:
            # Compare-and-set: of two requests racing with the same code, one wins.
            cur = await db.execute(
                "UPDATE users SET totp_step=? WHERE name=? AND totp_step=?", (step, name, last)
            )
            await db.commit()
            return cur.rowcount == 1
        finally:
            await db.close()

    async def set_totp(self, name: str, secret: str) -> None:
        """Turn one-time codes on (a secret) or off (empty)."""
        db = await self._connect()
        try:
            cur = await db.execute("UPDATE users SET totp_secret=? WHERE name=?", (secret, name))
            await db.commit()
            if cur.rowcount == 0:
                raise UserError(f"no user {name!r}")
        finally:
            await db.close()

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


# ---- what a fold of account events writes (libs/auth/fold.py), staff's and the portal's -----


async def store_session(db: aiosqlite.Connection, event: SessionStartedFields) -> None:
    await db.execute("DELETE FROM sessions WHERE expires < ?", (time.time(),))
    await db.execute(
        "INSERT OR IGNORE INTO sessions(id, user, created, seen, expires, address, user_agent) "
        "VALUES (?,?,?,?,?,?,?)",
        (
            event.session_hash,
            event.account,
            event.at,
            event.at,
            event.expires_at,
            event.address,
            event.user_agent,
        ),
    )


async def drop_sessions(db: aiosqlite.Connection, account: str, stored_id: str = "", keep: str = "") -> None:
    """End one session (``stored_id``), or every one of the account but ``keep``."""
    if stored_id:
        await db.execute("DELETE FROM sessions WHERE user=? AND id=?", (account, stored_id))
    else:
        await db.execute("DELETE FROM sessions WHERE user=? AND id!=?", (account, keep))


async def note_code_step(db: aiosqlite.Connection, account: str, step: int) -> None:
    """A code's step was used somewhere: this one, and every older one, are refused here too."""
    await db.execute("UPDATE users SET totp_step=? WHERE name=? AND totp_step<?", (step, account, step))


def session_start(lifetime_s: float, address: str, user_agent: str) -> tuple[str, dict[str, Any]]:
    """A new session's id (the cookie's) and the fields of its "started" event (the id's hash)."""
    sid = secrets.token_urlsafe(16)
    now = time.time()
    fields = {
        "session_hash": session_hash(sid),
        "expires_at": now + lifetime_s,
        "address": address[:64],
        "user_agent": user_agent[:300],
        "at": now,
    }
    return sid, fields


def read_only(path: Path) -> sqlite3.Connection | None:
    """The users file opened read-only, or None when there is none (or it cannot be opened)."""
    if not path.is_file():
        return None
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error:
        return None


def account_for_login(path: Path, login: str) -> str | None:
    """The staff account a host login acts as: the one linked to it, else an account of the same
    name; None when neither exists (or there is no user store here, e.g. a CLI on another host).

    Synchronous and read-only: the CLI asks once, before it connects to anything."""
    db = read_only(path)
    if db is None:
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
