"""Time-based one-time passwords (RFC 6238, on RFC 4226's HOTP), with the standard library only.

What authenticator apps speak: a shared secret (base32 in an ``otpauth://`` link), 30-second
steps, 6 digits, HMAC-SHA1. A code is accepted one step either side of now (clocks drift),
and never twice: the caller keeps the last accepted step and passes it back, so a code seen
over someone's shoulder cannot be replayed within its minute.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

STEP_S = 30
DIGITS = 6
Digest = Callable[..., Any]


def hotp(key: bytes, counter: int, digits: int = DIGITS, digest: Digest = hashlib.sha1) -> str:
    """RFC 4226 section 5.3: HMAC, dynamic truncation, the low ``digits`` decimal digits."""
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    code = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


def totp(
    key: bytes, at: float, digits: int = DIGITS, digest: Digest = hashlib.sha1, step: int = STEP_S
) -> str:
    return hotp(key, int(at // step), digits, digest)


def new_secret() -> str:
    """A 160-bit secret (RFC 4226's recommended length), base32 as apps expect it."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def secret_bytes(secret: str) -> bytes:
    s = secret.strip().replace(" ", "").upper()
    return base64.b32decode(s + "=" * (-len(s) % 8))


def accepted_step(secret: str, code: str, after_step: int, at: float | None = None) -> int | None:
    """The step a right ``code`` belongs to (now, or one step either side), if later than
    ``after_step`` (the last one accepted); else None."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    key = secret_bytes(secret)
    now_step = int((time.time() if at is None else at) // STEP_S)
    found = None
    for step in (now_step - 1, now_step, now_step + 1):
        if hmac.compare_digest(hotp(key, step), code) and step > after_step:
            found = step
    return found


def provisioning_uri(secret: str, account: str, issuer: str = "foto3d") -> str:
    """The ``otpauth://`` link an authenticator app imports (typed in, or as a QR code)."""
    label = urllib.parse.quote(f"{issuer}:{account}")
    query = urllib.parse.urlencode({"secret": secret, "issuer": issuer, "digits": DIGITS, "period": STEP_S})
    return f"otpauth://totp/{label}?{query}"
