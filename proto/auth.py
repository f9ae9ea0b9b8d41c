"""Staff sign-in events: every checked attempt and every unlock, shared by all dashboard instances.

Each dashboard instance folds these into its sign-in limits (``libs/auth/throttle.py``), so a
guesser cannot move on to the next instance, and a lock ends the same way everywhere. Only
attempts whose password was actually checked are published: a refused (locked) attempt
changes nothing, which is why trying again never unlocks or prolongs a lock.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from foto3d.proto.base import Event, Real

# What a name or address can be on the wire: the submitted text, cut (it is the client's text).
Name = Annotated[str, msgspec.Meta(max_length=128)]
Address = Annotated[str, msgspec.Meta(max_length=64)]
# How long an account's or address's failures are remembered after the last one (the stream's age).
SIGN_IN_MEMORY_S = 86400.0


class SignInChecked(Event, frozen=True, kw_only=True, tag="auth.signin/1"):
    """A password was checked for ``account`` (the submitted name, whether or not such a user
    exists) from client ``address``; ``ok`` says whether it was right."""

    account: Name
    address: Address
    ok: bool
    at: Real
    instance: str = ""
    attempt_id: str = ""


class SignInUnlocked(Event, frozen=True, kw_only=True, tag="auth.unlock/1"):
    """An administrator lifted the limits of an account or a client address (either may be empty)."""

    account: Name = ""
    address: Address = ""
    by: Name = ""
    at: Real = 0.0


SignInEvent = SignInChecked | SignInUnlocked

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]


class StaffNotice(Event, frozen=True, kw_only=True, tag="auth.notice/1"):
    """A mail for one staff member about their own account (a sign-in from a new address); the
    notifier sends it. ``notice_id`` is unique: a redelivered notice is sent once."""

    notice_id: Annotated[str, msgspec.Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    to: Email
    user: Name
    subject: Annotated[str, msgspec.Meta(max_length=200)]
    text: Annotated[str, msgspec.Meta(max_length=4000)]
    at: Real
