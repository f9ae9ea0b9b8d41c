"""Customer accounts: people of customers, apart from staff, each bound to one customer.

The people themselves (password hashes, one-time code secrets, sessions) are kept by the same
:class:`~foto3d.libs.auth.users.UserStore` as staff, in a file of the gateway's own
(``<data>/token_gateway/portal/accounts.db``), never the staff's: a customer account can never
sign in to the dashboard, nor staff to the portal. Beside them, in the same file, which
customer each account belongs to, and the invitations: one-time links kept as SHA-256 hashes,
with an expiry, used at most once.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from foto3d.libs.auth.users import UserError, UserStore, check_password, validate_username

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


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Member:
    name: str
    customer: str
    email: str


class PortalAccounts:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "accounts.db"
        self.users = UserStore(self.path)

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path)
        await db.executescript(SCHEMA)
        return db

    async def member(self, name: str) -> Member | None:
        db = await self._connect()
        try:
            async with db.execute("SELECT name, customer, email FROM members WHERE name=?", (name,)) as cur:
                row = await cur.fetchone()
        finally:
            await db.close()
        return Member(str(row[0]), str(row[1]), str(row[2])) if row else None

    async def invite(self, customer: str, email: str, by: str, hours: float) -> tuple[Member, str, float]:
        """(the account, the one-time token, its expiry). Makes the account on first invite, with a
        random password nobody knows: it can sign in only once the link has set one."""
        name = validate_username(email.strip().lower())
        existing = await self.member(name)
        if existing is not None and existing.customer != customer:
            raise UserError(f"{name} already has an account of another customer")
        if existing is None:
            if await self.users.get(name) is None:
                await self.users.add(name, secrets.token_urlsafe(32), display_name=email)
            db = await self._connect()
            try:
                await db.execute(
                    "INSERT OR IGNORE INTO members(name, customer, email, invited_by, created) VALUES (?,?,?,?,?)",
                    (name, customer, email, by, time.time()),
                )
                await db.commit()
            finally:
                await db.close()
        token = secrets.token_urlsafe(32)
        expires = time.time() + hours * 3600
        db = await self._connect()
        try:
            # One live link per account: an older one stops working when a new one is sent.
            await db.execute("DELETE FROM invites WHERE name=? AND used IS NULL", (name,))
            await db.execute(
                "INSERT INTO invites(token_hash, name, expires) VALUES (?,?,?)", (_hash(token), name, expires)
            )
            await db.commit()
        finally:
            await db.close()
        return Member(name, customer, email), token, expires

    async def invited(self, token: str) -> Member | None:
        """The account a live (unused, unexpired) link is for, else None."""
        db = await self._connect()
        try:
            async with db.execute(
                "SELECT name FROM invites WHERE token_hash=? AND used IS NULL AND expires>?",
                (_hash(token), time.time()),
            ) as cur:
                row = await cur.fetchone()
        finally:
            await db.close()
        return await self.member(str(row[0])) if row else None

    async def accept(self, token: str, password: str) -> Member | None:
        """Use a link up and set its account's password (the strength rules are the staff's);
        None when the link is not live. Raises :class:`UserError` for a password that will not do
        (the link stays usable then)."""
        member = await self.invited(token)
        if member is None:
            return None
        check_password(password, member.name)
        db = await self._connect()
        try:
            # Compare-and-set: of two submissions racing with one link, one wins.
            cur = await db.execute(
                "UPDATE invites SET used=? WHERE token_hash=? AND used IS NULL AND expires>?",
                (time.time(), _hash(token), time.time()),
            )
            await db.commit()
            won = cur.rowcount == 1
        finally:
            await db.close()
        if not won:
            return None
        await self.users.set_password(member.name, password)
        await self.users.set_disabled(member.name, False)
        return member
