"""Signed session cookies: ``name|session|expiry|hmac`` with a secret kept in the data folder.

A cookie is valid while its signature checks, it has not expired, and its session is still
in the user store (``UserStore.session_user``): ending a session there ("sign out
everywhere", a changed password) signs it out at its next request, on every instance that
shares the data folder. Disabling a user likewise takes effect at the next request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path


def load_secret(path: Path) -> bytes:
    """The signing key; created (owner-only) on first use."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class SessionSigner:
    def __init__(self, secret: bytes, max_age_s: float) -> None:
        self.secret = secret
        self.max_age_s = max_age_s

    def _mac(self, payload: str) -> str:
        digest = hmac.new(self.secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, user: str, now: float | None = None, session: str = "") -> str:
        expires = int((now or time.time()) + self.max_age_s)
        payload = f"{user}|{session}|{expires}"
        return f"{payload}|{self._mac(payload)}"

    def verify_session(self, cookie: str, now: float | None = None) -> tuple[str, str] | None:
        """(user name, session id) of a valid, unexpired cookie, else None."""
        # The cookie is a stranger's text: compare_digest raises on a non-ASCII str, encode() on a
        # lone surrogate, int() on digits isdigit() admits; any of those is simply not a session.
        try:
            user, session, expires, mac = cookie.rsplit("|", 3)
            exp = int(expires) if expires.isascii() else -1
            expected = self._mac(f"{user}|{session}|{expires}")
        except (ValueError, UnicodeEncodeError):
            return None
        if exp < 0 or not mac.isascii() or not hmac.compare_digest(mac, expected):
            return None
        if exp < (now or time.time()):
            return None
        return user, session

    def verify(self, cookie: str, now: float | None = None) -> str | None:
        """The user name in a valid, unexpired cookie, else None."""
        found = self.verify_session(cookie, now)
        return found[0] if found else None
