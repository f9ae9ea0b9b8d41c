"""Staff accounts shared by every dashboard instance at every site through ``AUTH_ACCOUNTS``.

:class:`SharedUsers` is the staff's :class:`~foto3d.libs.auth.users.UserStore`, but every change
(an account, a password, e-mail, one-time codes, disabling, a linked login, a session started
or ended) is published first and written by the fold (:mod:`foto3d.libs.auth.fold`), so it holds
on every instance; reads stay one indexed lookup in the local file. Session ids travel and are
kept only as SHA-256 hashes.

Without a fold (``foto3d users``, whose staff key may not read the stream) the same class
publishes, and writes its own change into this folder's file at once; the dashboards (this
host's too) apply it from the stream.

Not shared, on purpose: when a session was last seen, and the addresses an account signed in
from (the "new address" mail is per instance).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from pathlib import Path

import aiosqlite
import msgspec

from foto3d.libs.auth.fold import EXPECTED_SUBJECT_SEQ, FOLDED_SCHEMA, TTL, StreamFold, keep_cookie_key
from foto3d.libs.auth.users import (
    EMAIL_RE,
    User,
    UserError,
    UserStore,
    check_password,
    drop_sessions,
    hash_password,
    note_code_step,
    read_only,
    session_hash,
    session_start,
    store_session,
)
from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.publish import PublishError
from foto3d.proto import subjects
from foto3d.proto.staff_accounts import (
    StaffAccountAdded,
    StaffAccountChanged,
    StaffAccountEvent,
    StaffCodeUsed,
    StaffCookieKey,
    StaffLoginLinked,
    StaffPasswordSet,
    StaffSessionEnded,
    StaffSessionStarted,
)

log = logging.getLogger(__name__)

STREAM = subjects.AUTH_ACCOUNTS_STREAM
SCHEMA = """
CREATE TABLE IF NOT EXISTS shared_accounts (name TEXT PRIMARY KEY);
"""
# A session's events outlive it by this much; an end outlives any session started before it.
TTL_MARGIN_S = 3600
CODE_USED_TTL_S = 3600  # a code is good for a few 30 s steps at most
_decoder = msgspec.json.Decoder(StaffAccountEvent)


def account_key(name: str) -> str:
    """The subject token of an account: names may hold dots, which a subject cannot."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


def shared_cookie_key(path: Path) -> bytes | None:
    """The dashboards' shared cookie key as this users file holds it (None: not folded yet).

    Synchronous and read-only: read once, when an :class:`~foto3d.libs.auth.web.Auth` is made."""
    db = read_only(path)
    if db is None:
        return None
    try:
        row = db.execute("SELECT key FROM cookie_key").fetchone()
    except sqlite3.Error:  # a file that never folded the stream
        return None
    finally:
        db.close()
    return bytes.fromhex(str(row[0])) if row else None


class SharedUsers(UserStore):
    def __init__(self, path: Path, bus: Bus, fold: bool = True) -> None:
        super().__init__(path)
        self.bus = bus
        self.fold = (
            StreamFold(
                bus,
                STREAM,
                subjects.AUTH_ACCOUNTS_ALL,
                self._connect,
                _apply,
                # A recreated stream: the sessions and the key start again; the accounts stay
                # here and are published again by :meth:`start` (nothing marks them shared).
                ("sessions", "shared_accounts", "cookie_key"),
            )
            if fold
            else None
        )

    async def _connect(self) -> aiosqlite.Connection:
        db = await super()._connect()
        await db.executescript(SCHEMA)
        return db

    # ---- start: fold, then publish what only this file knew -----------------------------

    async def start(self) -> None:
        assert self.fold is not None
        first = not await self._has_folded()
        await self.fold.start()
        if first:
            # Sessions of the file before it was shared were named by the raw id, not its hash;
            # their people sign in again, once.
            db = await self._connect()
            try:
                await db.execute("DELETE FROM sessions WHERE length(id) != 64")
                await db.commit()
            finally:
                await db.close()
        await self._publish_local_accounts(first)

    async def stop(self) -> None:
        if self.fold is not None:
            await self.fold.stop()

    async def _has_folded(self) -> bool:
        db = await self._connect()
        try:
            await db.executescript(FOLDED_SCHEMA)
            async with db.execute("SELECT seq FROM folded WHERE stream=?", (STREAM,)) as cur:
                return await cur.fetchone() is not None
        finally:
            await db.close()

    async def _publish_local_accounts(self, with_logins: bool) -> None:
        """Accounts this file has that the stream never carried (made before the stream existed,
        or by ``foto3d users`` with no bus reachable) are published once, whole."""
        db = await self._connect()
        try:
            async with db.execute(
                "SELECT name, display_name, password, admin, must_change, disabled, email, totp_secret, created "
                "FROM users WHERE name NOT IN (SELECT name FROM shared_accounts) ORDER BY created"
            ) as cur:
                local = await cur.fetchall()
            async with db.execute("SELECT login, name FROM logins") as cur:
                logins = await cur.fetchall() if with_logins else []
        finally:
            await db.close()
        for r in local:
            event = StaffAccountAdded(
                account=r[0],
                display_name=r[1],
                password_hash=r[2],
                admin=bool(r[3]),
                must_change=bool(r[4]),
                disabled=bool(r[5]),
                email=r[6],
                totp_secret=r[7],
                created=float(r[8]),
                at=time.time(),
            )
            if await self._share_first(subjects.auth_account(account_key(r[0])), event):
                log.warning(
                    "staff account %s was only in this data folder: now shared by every instance", r[0]
                )
            else:
                log.warning("staff account %s of this data folder lost to the shared one of that name", r[0])
        for login, name in logins:
            await self._share(
                subjects.auth_account(account_key(name)),
                StaffLoginLinked(account=name, login=login, at=time.time()),
            )

    async def cookie_key(self, proposal: bytes) -> bytes:
        """The dashboards' cookie key, the same on every instance: the stream's, or ``proposal``
        (this folder's own) when this instance is the first."""
        assert self.fold is not None
        return await self.fold.cookie_key(
            subjects.auth_cookie_key(), StaffCookieKey(key_hex=proposal.hex(), at=time.time())
        )

    # ---- publishing ---------------------------------------------------------------------

    async def _share(
        self, subject: str, event: msgspec.Struct, headers: dict[str, str] | None = None
    ) -> None:
        if self.fold is not None:
            await self.fold.share(subject, event, headers)
        else:
            await self.bus.publish(subject, event, headers=headers, deadline=10.0)
            await self._apply_here(event)

    async def _share_first(self, subject: str, event: msgspec.Struct) -> bool:
        if self.fold is not None:
            return await self.fold.share_first(subject, event)
        try:
            await self.bus.publish(subject, event, headers={EXPECTED_SUBJECT_SEQ: "0"}, deadline=10.0)
        except PublishError:
            return False
        await self._apply_here(event)
        return True

    async def _apply_here(self, event: msgspec.Struct) -> None:
        """Publishing only: write the change into this folder's file too, now, so the command's
        word holds here whether or not a dashboard runs on it. A fold here applies it again in
        stream order (no harm: applying is idempotent, and what it reaches is the stream's)."""
        db = await self._connect()
        try:
            await _apply(db, msgspec.json.encode(event), 0)
            await db.commit()
        finally:
            await db.close()

    async def _local_has(self, name: str) -> bool:
        db = await self._connect()
        try:
            async with db.execute("SELECT 1 FROM users WHERE name=?", (name,)) as cur:
                return await cur.fetchone() is not None
        finally:
            await db.close()

    async def _require(self, name: str) -> None:
        """Raise for an account nobody has: asked of this file, or (publishing only) of the stream,
        whose subject names (hashes) and counts the staff role may see, but not its messages, or
        of this folder (an account only it has is published whole when a dashboard starts here)."""
        if self.fold is not None:
            found = await self._local_has(name)
        else:
            subject = subjects.auth_account(account_key(name))
            info = await self.bus.js.stream_info(STREAM, subjects_filter=subject)
            found = bool((info.state.subjects or {}).get(subject)) or await self._local_has(name)
        if not found:
            raise UserError(f"no user {name!r}")

    # ---- changes ------------------------------------------------------------------------

    async def add(
        self, name: str, password: str, display_name: str = "", admin: bool = False, must_change: bool = False
    ) -> User:
        hashed = await self.new_account_hash(name, password)
        now = time.time()
        event = StaffAccountAdded(
            account=name,
            display_name=display_name or name,
            password_hash=hashed,
            admin=admin,
            must_change=must_change,
            created=now,
            at=now,
        )
        if not await self._share_first(subjects.auth_account(account_key(name)), event):
            raise UserError(f"user {name!r} already exists")
        return User(name, display_name or name, admin, must_change)

    async def set_password(self, name: str, password: str, keep_session: str = "") -> None:
        check_password(password, name)
        await self._require(name)
        hashed = await asyncio.to_thread(hash_password, password)
        await self._share(
            subjects.auth_account(account_key(name)),
            StaffPasswordSet(
                account=name,
                password_hash=hashed,
                keep_session_hash=session_hash(keep_session) if keep_session else "",
                at=time.time(),
            ),
        )

    async def set_disabled(self, name: str, disabled: bool) -> None:
        await self._change(StaffAccountChanged(account=name, disabled=disabled, at=time.time()))

    async def set_email(self, name: str, email: str) -> None:
        if email and not EMAIL_RE.match(email):
            raise UserError(f"{email!r} is not a mail address")
        await self._change(StaffAccountChanged(account=name, email=email, at=time.time()))

    async def set_totp(self, name: str, secret: str) -> None:
        await self._change(StaffAccountChanged(account=name, totp_secret=secret, at=time.time()))

    async def _change(self, event: StaffAccountChanged) -> None:
        await self._require(event.account)
        await self._share(subjects.auth_account(account_key(event.account)), event)

    async def link_login(self, name: str, login: str) -> None:
        if not login or len(login) > 256:
            raise UserError("a login name is 1-256 characters")
        await self._require(name)
        await self._share(
            subjects.auth_account(account_key(name)),
            StaffLoginLinked(account=name, login=login, at=time.time()),
        )

    async def check_code(self, name: str, code: str, secret: str | None = None) -> bool:
        """As the local store's, and an accepted code's step is shared, so another instance refuses
        the same code once it has folded that (moments later; the password is needed as well)."""
        if not await super().check_code(name, code, secret):
            return False
        _, step = await self.totp_secret(name)
        await self._share(
            subjects.auth_account_code(account_key(name)),
            StaffCodeUsed(account=name, step=step, at=time.time()),
            {TTL: str(CODE_USED_TTL_S)},
        )
        return True

    # ---- sessions -----------------------------------------------------------------------

    async def open_session(
        self, name: str, lifetime_s: float, address: str = "", user_agent: str = ""
    ) -> str:
        sid, fields = session_start(lifetime_s, address, user_agent)
        await self._share(
            subjects.auth_session(fields["session_hash"]),
            StaffSessionStarted(account=name, **fields),
            {TTL: str(int(lifetime_s) + TTL_MARGIN_S)},
        )
        return sid

    async def end_stored_sessions(self, name: str, stored_id: str | None = None, keep: str = "") -> int:
        live = {s.id for s in await self.sessions(name)}
        ending = ({stored_id} & live) if stored_id is not None else (live - {keep})
        # The session's own subject (its TTL outlives the session), or the account's for "all".
        subject = subjects.auth_session(stored_id) if stored_id else subjects.auth_account(account_key(name))
        headers = {TTL: str(SESSION_END_TTL_S)} if stored_id else None
        await self._share(
            subject,
            StaffSessionEnded(
                account=name, session_hash=stored_id or "", keep_session_hash=keep, at=time.time()
            ),
            headers,
        )
        return len(ending)


# An end of one session outlives any session (dashboard sessions last hours, not days).
SESSION_END_TTL_S = 2 * 86400


async def _apply(db: aiosqlite.Connection, data: bytes, seq: int) -> None:
    """One event into the file; applying it twice changes nothing more."""
    event = _decoder.decode(data)
    match event:
        case StaffAccountAdded():
            await db.execute(
                "INSERT OR REPLACE INTO users(name, display_name, password, admin, created, disabled, "
                "must_change, email, totp_secret, totp_step) VALUES (?,?,?,?,?,?,?,?,?,0)",
                (
                    event.account,
                    event.display_name,
                    event.password_hash,
                    int(event.admin),
                    event.created,
                    int(event.disabled),
                    int(event.must_change),
                    event.email,
                    event.totp_secret,
                ),
            )
            await db.execute("INSERT OR IGNORE INTO shared_accounts(name) VALUES (?)", (event.account,))
        case StaffPasswordSet():
            await db.execute(
                "UPDATE users SET password=?, must_change=0 WHERE name=?",
                (event.password_hash, event.account),
            )
            await db.execute(
                "DELETE FROM sessions WHERE user=? AND id!=?", (event.account, event.keep_session_hash)
            )
        case StaffAccountChanged():
            for column, value in (
                ("email", event.email),
                ("disabled", None if event.disabled is None else int(event.disabled)),
                ("totp_secret", event.totp_secret),
            ):
                if value is not None:
                    await db.execute(f"UPDATE users SET {column}=? WHERE name=?", (value, event.account))
        case StaffCodeUsed():
            await note_code_step(db, event.account, event.step)
        case StaffLoginLinked():
            await db.execute(
                "INSERT INTO logins(login, name) VALUES (?, ?) ON CONFLICT(login) DO UPDATE SET name=excluded.name",
                (event.login, event.account),
            )
        case StaffSessionStarted():
            await store_session(db, event)
        case StaffSessionEnded():
            await drop_sessions(db, event.account, event.session_hash, event.keep_session_hash)
        case StaffCookieKey():
            await keep_cookie_key(db, event.key_hex)
