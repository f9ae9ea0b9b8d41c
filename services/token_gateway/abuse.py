"""Abuse protection: token-bucket rate limits, temporary bans after bad credentials, IP lists.

All of it is per instance and in memory (bans are also written to sqlite so a restart keeps
them): behind a balancer with N instances a client gets at most N times a bucket, which is
the usual trade for not putting a shared store in every request's path.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """One bucket per key: ``burst`` tokens, refilled at ``rate`` per second; a request takes one."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed, else the seconds until a token is back (for Retry-After)."""
        t = time.monotonic() if now is None else now
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_keys:
                self._evict_full(t)
            b = self._buckets[key] = _Bucket(self.burst, t)
        else:
            b.tokens = min(self.burst, b.tokens + (t - b.stamp) * self.rate)
            b.stamp = t
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / self.rate

    def _evict_full(self, now: float) -> None:
        # A bucket that has refilled completely holds no state worth keeping.
        full_after = self.burst / self.rate
        for k in [k for k, b in self._buckets.items() if now - b.stamp >= full_after]:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:  # still full: an attack on many keys; start afresh
            self._buckets.clear()


class BanList:
    """Counts bad credentials per IP in a sliding window; past the threshold the IP is banned."""

    def __init__(self, threshold: int, window_s: float, ban_s: float) -> None:
        self.threshold = threshold
        self.window_s = window_s
        self.ban_s = ban_s
        self.bans: dict[str, float] = {}  # ip -> until (wall clock)
        self._failures: dict[str, deque[float]] = {}

    def banned_until(self, ip: str, now: float | None = None) -> float | None:
        until = self.bans.get(ip)
        if until is None:
            return None
        if until <= (time.time() if now is None else now):
            del self.bans[ip]
            return None
        return until

    def failure(self, ip: str, now: float | None = None) -> float | None:
        """Record a bad credential; returns the ban's end when this one tips the IP over."""
        t = time.time() if now is None else now
        q = self._failures.setdefault(ip, deque())
        q.append(t)
        while q and q[0] <= t - self.window_s:
            q.popleft()
        if len(q) >= self.threshold:
            del self._failures[ip]
            self.bans[ip] = t + self.ban_s
            return self.bans[ip]
        if len(self._failures) > 100_000:
            self._failures = {k: v for k, v in self._failures.items() if v and v[-1] > t - self.window_s}
        return None


def client_network(ip: str) -> str:
    """The client's /24 (IPv4) or /48 (IPv6): where an address must not be kept whole."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "-"
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def parse_networks(values: list[str], what: str) -> list[Network]:
    nets: list[Network] = []
    for v in values:
        try:
            nets.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            raise ValueError(f"[token_gateway] {what}: {v!r} is not an IP address or CIDR network") from None
    return nets


class IpFilter:
    def __init__(self, allow: list[Network], deny: list[Network]) -> None:
        self.allow = allow
        self.deny = deny

    def admits(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return not self.allow  # a peer without an IP (unix socket): only when nothing is required
        if any(addr in n for n in self.deny):
            return False
        return not self.allow or any(addr in n for n in self.allow)
