"""What both kinds of accounts say about sessions, one-time codes and cookie keys.

Staff accounts (``AUTH_ACCOUNTS``, ``proto/staff_accounts.py``) and the customer portal's
(``GATEWAY_PORTAL``, ``proto/portal.py``) are folded the same way (``libs/auth/fold.py``), and
their sessions, used codes and cookie keys carry the same fields: these are those fields. Each
stream tags its own events (a staff event can never be read as a portal one).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from foto3d.proto.base import Event, Real

Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Account = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class SessionStartedFields(Event, frozen=True, kw_only=True):
    account: Account
    session_hash: Sha256Hex
    expires_at: Real
    address: str = ""
    user_agent: str = ""
    at: Real


class SessionEndedFields(Event, frozen=True, kw_only=True):
    account: Account
    session_hash: str = ""
    at: Real


class CodeUsedFields(Event, frozen=True, kw_only=True):
    account: Account
    step: int
    at: Real


class CookieKeyFields(Event, frozen=True, kw_only=True):
    key_hex: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
    at: Real
