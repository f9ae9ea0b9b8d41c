"""Sign-in limits: failed passwords slow further tries, per account and per client address.

Each account name and each client address keeps a count of failed sign-ins. The first
``free`` failures cost nothing (people mistype); every later failure makes the key wait
``base_s`` doubled per failure, up to ``cap_s``, before the next password is checked. While
a key waits, an attempt is refused without looking at the password and *without being
counted*: trying again neither unlocks nor prolongs a lock, and a refused attempt cannot tell
a right password from a wrong one. A lock ends by time, or when an administrator lifts it.

Names that belong to nobody are limited exactly like real ones, so the answers (and their
timing) never say whether a user exists. A right password clears its account's and its
address's counts. Counts are forgotten ``memory_s`` after their last failure.

The state is a fold of :mod:`foto3d.proto.auth` events, the same on every instance that
reads the same stream (``libs/auth/shared.py``).
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from foto3d.proto.auth import SignInChecked, SignInEvent, SignInUnlocked


@dataclass(frozen=True)
class Backoff:
    """How failures slow one key: ``free`` at no cost, then ``base_s`` doubling up to ``cap_s``."""

    free: int
    base_s: float
    cap_s: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure before the next check."""
        if failures < self.free:
            return 0.0
        return min(self.cap_s, self.base_s * 2.0 ** min(failures - self.free, 60))

    def attempts_within(self, seconds: float) -> int:
        """Passwords checked from time 0 to ``seconds`` (inclusive) for a guesser who starts with no
        failures counted and retries the moment each wait ends: the most the policy allows."""
        if self.base_s <= 0:
            raise ValueError("a policy without waits has no bound")
        t, n = 0.0, 0
        while t <= seconds:
            n += 1
            t += self.delay(n)
        return n


@dataclass
class _Count:
    failures: int
    last: float


def address_key(address: str) -> str:
    """The limited unit of a client address: one IPv4 address, or one IPv6 /64 (a single
    host is usually given a whole /64, so counting single IPv6 addresses would count nothing)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


class SignInLimits:
    def __init__(self, account: Backoff, address: Backoff, memory_s: float, max_keys: int = 100_000) -> None:
        self.account = account
        self.address = address
        self.memory_s = memory_s
        self.max_keys = max_keys
        self._accounts: dict[str, _Count] = {}
        self._addresses: dict[str, _Count] = {}

    def _wait(self, table: dict[str, _Count], key: str, policy: Backoff, now: float) -> float:
        c = table.get(key)
        if c is None or now - c.last >= self.memory_s:
            return 0.0
        return max(0.0, c.last + policy.delay(c.failures) - now)

    def retry_after(self, account: str, address: str, now: float) -> float:
        """0 when a password may be checked now, else the seconds until it may."""
        return max(
            self._wait(self._accounts, account, self.account, now),
            self._wait(self._addresses, address_key(address), self.address, now),
        )

    def failures(self, account: str, now: float) -> int:
        c = self._accounts.get(account)
        return 0 if c is None or now - c.last >= self.memory_s else c.failures

    def _fail(self, table: dict[str, _Count], key: str, at: float) -> int:
        c = table.get(key)
        if c is None or at - c.last >= self.memory_s:
            if len(table) >= self.max_keys:
                self._forget(table, at)
            c = table[key] = _Count(0, at)
        c.failures += 1
        c.last = max(c.last, at)
        return c.failures

    def _forget(self, table: dict[str, _Count], now: float) -> None:
        for k in [k for k, c in table.items() if now - c.last >= self.memory_s]:
            del table[k]
        if len(table) >= self.max_keys:  # a flood of names: keep the most recent half
            keep = sorted(table.items(), key=lambda kv: kv[1].last)[len(table) // 2 :]
            table.clear()
            table.update(keep)

    def apply(self, event: SignInEvent) -> bool:
        """Fold one event in; True when it is the failure that first locks its account (an
        incident starts: this is when people are told)."""
        if isinstance(event, SignInUnlocked):
            if event.account:
                self._accounts.pop(event.account, None)
            if event.address:
                self._addresses.pop(address_key(event.address), None)
            return False
        assert isinstance(event, SignInChecked)
        if event.ok:
            self._accounts.pop(event.account, None)
            self._addresses.pop(address_key(event.address), None)
            return False
        self._fail(self._addresses, address_key(event.address), event.at)
        return self._fail(self._accounts, event.account, event.at) == self.account.free

    def locked_accounts(self, now: float) -> list[tuple[str, int, float]]:
        """(account, failures, seconds left) for every account waiting now."""
        out = []
        for name, c in self._accounts.items():
            left = self._wait(self._accounts, name, self.account, now)
            if left > 0:
                out.append((name, c.failures, left))
        return sorted(out)


def too_many_sign_ins(wait: float) -> tuple[str, str]:
    """What a sign-in page says to a try refused unseen while ``wait`` seconds remain, and its
    ``Retry-After`` (whole seconds, at least one)."""
    retry = max(1, math.ceil(wait))
    return (
        f"Too many failed sign-ins for this account or from this address. Try again in {retry} s.",
        str(retry),
    )
