"""Customer accounts: people of customers, apart from staff, each bound to one customer.

The people themselves (password hashes, one-time code secrets, sessions) are kept by the same
:class:`~foto3d.libs.auth.users.UserStore` as staff, in a file of the gateway's own
(``<data>/token_gateway/portal/accounts.db``), never the staff's: a customer account can never
sign in to the dashboard, nor staff to the portal. Beside them, in the same file, which
customer each account belongs to, and the invitations: one-time links kept as SHA-256 hashes,
with an expiry, used at most once.

That file is a fold of the ``GATEWAY_PORTAL`` stream (``foto3d.proto.portal``), as the
credentials file is of theirs and the staff's users file is of ``AUTH_ACCOUNTS``, by the same
mechanism (:mod:`foto3d.libs.auth.fold`): every change (an invitation, its acceptance with the
password's hash, one-time codes on or off, a session started or ended) is published first, and
every instance writes it in stream order, each event once. An instance that made a change waits
until its own fold has reached it, so its next request sees it; the others see it a moment
later; one that starts with an empty folder reads the whole stream. Session ids and invitation
links are kept (and sent) only as SHA-256 hashes.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import msgspec

from foto3d.libs.auth.fold import EXPECTED_SUBJECT_SEQ, TTL, StreamFold, keep_cookie_key
from foto3d.libs.auth.users import (
    UserError,
    UserStore,
    check_password,
    drop_sessions,
    hash_password,
    note_code_step,
    session_start,
    store_session,
    validate_username,
)
from foto3d.libs.bus.connection import Bus
from foto3d.libs.bus.publish import PublishError
from foto3d.proto import subjects
from foto3d.proto.portal import (
    PortalCodeUsed,
    PortalCookieKey,
    PortalEvent,
    PortalInviteAccepted,
    PortalInvited,
    PortalSessionEnded,
    PortalSessionStarted,
    PortalTotpSet,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    name TEXT PRIMARY KEY,
    customer TEXT NOT NULL,
    email TEXT NOT NULL,
    invited_by TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS invites (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    expires REAL NOT NULL,
    used REAL
);
CREATE INDEX IF NOT EXISTS invites_by_name ON invites(name);
"""
# The invitation's own stream sequence: its acceptance is a compare-and-set against it.
LATER_COLUMNS = {"invites": ("seq", "INTEGER NOT NULL DEFAULT 0")}
# Per-message TTL: a session's events and a used code's step leave the stream once they no longer
# matter, so the stream (and an empty instance's catch-up) stays the size of the accounts and the
# live sessions, not of every sign-in ever made. An end outlives any session started before it.
TTL_MARGIN_S = 3600
ENDED_TTL_S = 2 * 86400  # portal sessions last 12 hours
CODE_USED_TTL_S = 3600  # a code is good for a few 30 s steps at most
STREAM = subjects.GATEWAY_PORTAL_STREAM
_decoder = msgspec.json.Decoder(PortalEvent)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Member:
    name: str
    customer: str
    email: str


class PortalUsers(UserStore):
    """The staff's user store, but every change goes over the stream first (see the module's
    docstring); session ids are looked up by their hash, the only form the stream carries."""

    def __init__(self, path: Path, accounts: PortalAccounts) -> None:
        super().__init__(path)
        self.accounts = accounts

    async def open_session(
        self, name: str, lifetime_s: float, address: str = "", user_agent: str = ""
    ) -> str:
        sid, fields = session_start(lifetime_s, address, user_agent)
        await self.accounts.share(
            subjects.gateway_portal_session(fields["session_hash"]),
            PortalSessionStarted(account=name, **fields),
            {TTL: str(int(lifetime_s) + TTL_MARGIN_S)},
        )
        return sid

    async def end_sessions(self, name: str, sid: str | None = None, keep: str = "") -> int:
        if keep:
            raise UserError("the portal ends one session or all of them")
        session_hash = _hash(sid) if sid else ""
        await self.accounts.share(
            subjects.gateway_portal_session(session_hash) if sid else subjects.gateway_portal_accounts(),
            PortalSessionEnded(account=name, session_hash=session_hash, at=time.time()),
            {TTL: str(ENDED_TTL_S)},
        )
        return 1

    async def check_code(self, name: str, code: str, secret: str | None = None) -> bool:
        """As the staff's, and an accepted code's step is shared, so another instance refuses the
        same code once it has folded that (moments later; the password is needed as well)."""
        if not await super().check_code(name, code, secret):
            return False
        _, step = await self.totp_secret(name)
        await self.accounts.share(
            subjects.gateway_portal_accounts(),
            PortalCodeUsed(account=name, step=step, at=time.time()),
            {TTL: str(CODE_USED_TTL_S)},
        )
        return True

    async def set_totp(self, name: str, secret: str) -> None:
        if await self.get(name) is None:
            raise UserError(f"no user {name!r}")
        await self.accounts.share(
            subjects.gateway_portal_accounts(), PortalTotpSet(account=name, secret=secret, at=time.time())
        )


class PortalAccounts:
    def __init__(self, folder: Path, bus: Bus) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "accounts.db"
        self.bus = bus
        self.users = PortalUsers(self.path, self)
        self.fold = StreamFold(
            bus,
            STREAM,
            subjects.GATEWAY_PORTAL_ALL,
            self._connect,
            _apply,
            ("members", "invites", "cookie_key", "sessions", "users"),
        )

    async def _connect(self) -> aiosqlite.Connection:
        db = await self.users._connect()  # the user store's tables first: the fold writes both
        await db.executescript(SCHEMA)
        for table, (column, definition) in LATER_COLUMNS.items():
            async with db.execute(f"PRAGMA table_info({table})") as cur:
                if column not in {r[1] for r in await cur.fetchall()}:
                    await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        return db

    # ---- the fold (libs/auth/fold.py) ----------------------------------------------------

    async def start(self) -> None:
        """Fold the stream from where this file left it; return once caught up."""
        await self.fold.start()

    async def stop(self) -> None:
        await self.fold.stop()

    async def share(self, subject: str, event: msgspec.Struct, headers: dict[str, str] | None = None) -> None:
        """Publish a change and return once this instance's fold holds it."""
        await self.fold.share(subject, event, headers)

    async def cookie_key(self) -> bytes:
        """The portal's cookie key, the same on every instance: adopted from the stream, or made
        and published by the first instance that needs one."""
        return await self.fold.cookie_key(
            subjects.gateway_portal_cookie_key(),
            PortalCookieKey(key_hex=secrets.token_hex(32), at=time.time()),
        )

    # ---- reads --------------------------------------------------------------------------

    async def member(self, name: str) -> Member | None:
        db = await self._connect()
        try:
            async with db.execute("SELECT name, customer, email FROM members WHERE name=?", (name,)) as cur:
                row = await cur.fetchone()
        finally:
            await db.close()
        return Member(str(row[0]), str(row[1]), str(row[2])) if row else None

    async def _live_invite(self, token: str) -> tuple[str, int] | None:
        db = await self._connect()
        try:
            async with db.execute(
                "SELECT name, seq FROM invites WHERE token_hash=? AND used IS NULL AND expires>?",
                (_hash(token), time.time()),
            ) as cur:
                row = await cur.fetchone()
        finally:
            await db.close()
        return (str(row[0]), int(row[1])) if row else None

    async def invited(self, token: str) -> Member | None:
        """The account a live (unused, unexpired) link is for, else None."""
        live = await self._live_invite(token)
        return await self.member(live[0]) if live else None

    # ---- changes ------------------------------------------------------------------------

    async def invite(self, customer: str, email: str, by: str, hours: float) -> tuple[Member, str, float]:
        """(the account, the one-time token, its expiry). Makes the account on first invite, with a
        random password nobody knows: it can sign in only once the link has set one."""
        name = validate_username(email.strip().lower())
        existing = await self.member(name)
        if existing is not None and existing.customer != customer:
            raise UserError(f"{name} already has an account of another customer")
        token = secrets.token_urlsafe(32)
        expires = time.time() + hours * 3600
        link_hash = _hash(token)
        unusable = await asyncio.to_thread(hash_password, secrets.token_urlsafe(32))
        await self.share(
            subjects.gateway_portal_invite(link_hash),
            PortalInvited(
                account=name,
                customer=customer,
                email=email,
                invited_by=by,
                unusable_password_hash=unusable,
                link_hash=link_hash,
                expires_at=expires,
                at=time.time(),
            ),
        )
        member = await self.member(name)
        if member is None or member.customer != customer:  # another instance gave it away first
            raise UserError(f"{name} already has an account of another customer")
        return member, token, expires

    async def accept(self, token: str, password: str) -> Member | None:
        """Use a link up and set its account's password (the strength rules are the staff's);
        None when the link is not live. Raises :class:`UserError` for a password that will not do
        (the link stays usable then)."""
        live = await self._live_invite(token)
        member = await self.member(live[0]) if live else None
        if live is None or member is None:
            return None
        check_password(password, member.name)
        hashed = await asyncio.to_thread(hash_password, password)
        link_hash = _hash(token)
        try:
            # Compare-and-set on the link's own subject: of two instances racing with one link,
            # the stream takes one acceptance, and refuses the other.
            await self.share(
                subjects.gateway_portal_invite(link_hash),
                PortalInviteAccepted(
                    account=member.name, link_hash=link_hash, password_hash=hashed, at=time.time()
                ),
                {EXPECTED_SUBJECT_SEQ: str(live[1])},
            )
        except PublishError:
            return None
        return member


async def _apply(db: aiosqlite.Connection, data: bytes, seq: int) -> None:
    """One event into the file; applying it twice changes nothing more."""
    event = _decoder.decode(data)
    match event:
        case PortalInvited():
            async with db.execute("SELECT customer FROM members WHERE name=?", (event.account,)) as cur:
                row = await cur.fetchone()
            if row is not None and str(row[0]) != event.customer:
                return  # two instances invited one address for two customers: the first one holds
            await db.execute(
                "INSERT OR IGNORE INTO users(name, display_name, password, admin, created) VALUES (?,?,?,0,?)",
                (event.account, event.email, event.unusable_password_hash, event.at),
            )
            await db.execute(
                "INSERT OR IGNORE INTO members(name, customer, email, invited_by, created) VALUES (?,?,?,?,?)",
                (event.account, event.customer, event.email, event.invited_by, event.at),
            )
            # One live link per account: an older one stops working when a new one is sent.
            await db.execute(
                "DELETE FROM invites WHERE name=? AND used IS NULL AND token_hash!=?",
                (event.account, event.link_hash),
            )
            await db.execute(
                "INSERT OR IGNORE INTO invites(token_hash, name, expires, seq) VALUES (?,?,?,?)",
                (event.link_hash, event.account, event.expires_at, seq),
            )
        case PortalInviteAccepted():
            cur = await db.execute(
                "UPDATE invites SET used=? WHERE token_hash=? AND name=? AND used IS NULL",
                (event.at, event.link_hash, event.account),
            )
            if cur.rowcount == 1:
                await db.execute(
                    "UPDATE users SET password=?, must_change=0, disabled=0 WHERE name=?",
                    (event.password_hash, event.account),
                )
                await db.execute("DELETE FROM sessions WHERE user=?", (event.account,))
        case PortalTotpSet():
            await db.execute("UPDATE users SET totp_secret=? WHERE name=?", (event.secret, event.account))
        case PortalCodeUsed():
            await note_code_step(db, event.account, event.step)
        case PortalSessionStarted():
            await store_session(db, event)
        case PortalSessionEnded():
            await drop_sessions(db, event.account, event.session_hash)
        case PortalCookieKey():
            await keep_cookie_key(db, event.key_hex)
