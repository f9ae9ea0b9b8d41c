"""TOTP against the test vectors published in RFC 6238 (Appendix B) and RFC 4226 (Appendix D)."""

from __future__ import annotations

import base64
import hashlib

from foto3d.libs.auth.totp import accepted_step, hotp, new_secret, provisioning_uri, secret_bytes, totp

SEED20 = b"12345678901234567890"
SEED32 = b"12345678901234567890123456789012"
SEED64 = SEED20 * 3 + b"1234"

# RFC 6238 Appendix B: time, then the 8-digit TOTP for SHA1, SHA256 and SHA512.
RFC6238 = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]
# RFC 4226 Appendix D: HOTP values for counters 0-9 of the 20-byte seed.
RFC4226 = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]


def test_rfc6238_vectors() -> None:
    for t, sha1, sha256, sha512 in RFC6238:
        assert totp(SEED20, t, 8, hashlib.sha1) == sha1, t
        assert totp(SEED32, t, 8, hashlib.sha256) == sha256, t
        assert totp(SEED64, t, 8, hashlib.sha512) == sha512, t


def test_rfc4226_vectors() -> None:
    assert [hotp(SEED20, c) for c in range(10)] == RFC4226


def test_codes_are_accepted_near_now_and_only_once() -> None:
    secret = base64.b32encode(SEED20).decode()
    assert secret_bytes(secret) == SEED20 and len(secret_bytes(new_secret())) == 20
    at = 1111111109.0
    step = int(at // 30)
    code = hotp(SEED20, step)
    assert accepted_step(secret, code, 0, at) == step
    assert accepted_step(secret, code, 0, at + 30) == step  # a step late: clocks drift
    assert accepted_step(secret, code, 0, at + 90) is None  # too late
    assert accepted_step(secret, code, step, at) is None  # already used: no replay
    assert accepted_step(secret, "12345", 0, at) is None and accepted_step(secret, "abcdef", 0, at) is None
    uri = provisioning_uri(secret, "ana")
    assert uri.startswith("otpauth://totp/foto3d%3Aana?") and f"secret={secret}" in uri
