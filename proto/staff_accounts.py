"""Staff account events, on the ``AUTH_ACCOUNTS`` stream.

Every dashboard instance (every service's HTTP port, ``foto3d up``) folds them, in stream order,
into its own ``<data>/auth/users.db``, so an account, a password, a one-time code secret, a
session or its end made on one instance (or by ``foto3d users``) holds on all of them, and on
one that starts later with an empty folder. Secrets travel only as the instances keep them:
scrypt password hashes (never a password) and SHA-256 hashes of session ids. The one-time code
secret travels as it is (every instance must check codes); the stream is readable only by the
services' bus users, never by the staff role (``proto/permissions.py``, ``SECRET_STREAMS``).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from foto3d.proto.account_sessions import (
    Account,
    CodeUsedFields,
    CookieKeyFields,
    SessionEndedFields,
    SessionStartedFields,
)
from foto3d.proto.base import Event, Real


class StaffAccountAdded(Event, frozen=True, kw_only=True, tag="staff.account_added/1"):
    """A new account, whole: published with ``Nats-Expected-Last-Subject-Sequence: 0`` on the
    account's own subject, so of two adds of one name the stream takes one. An account that
    existed in one host's file before the stream did is published this way too, once."""

    account: Account
    display_name: str
    password_hash: str
    admin: bool = False
    must_change: bool = False
    disabled: bool = False
    email: str = ""
    totp_secret: str = ""
    created: Real
    at: Real


class StaffPasswordSet(Event, frozen=True, kw_only=True, tag="staff.password_set/1"):
    """A new password: every session of the account ends but ``keep_session_hash`` (the one
    that changed it, if any)."""

    account: Account
    password_hash: str
    keep_session_hash: str = ""
    at: Real


class StaffAccountChanged(Event, frozen=True, kw_only=True, tag="staff.account_changed/1"):
    """One setting of an account; a field left ``None`` is unchanged."""

    account: Account
    email: str | None = None
    disabled: bool | None = None
    # One-time codes on (a secret) or off (empty).
    totp_secret: str | None = None
    at: Real


class StaffCodeUsed(CodeUsedFields, frozen=True, kw_only=True, tag="staff.code_used/1"):
    """A one-time code was accepted (its time step): no instance accepts it, or an older one, again."""


class StaffLoginLinked(Event, frozen=True, kw_only=True, tag="staff.login_linked/1"):
    """The host login ``login`` acts as ``account`` in the CLI (``foto3d users link``)."""

    account: Account
    login: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    at: Real


class StaffSessionStarted(SessionStartedFields, frozen=True, kw_only=True, tag="staff.session_started/1"):
    """A sign-in: its session, named by the SHA-256 of its id."""


class StaffSessionEnded(SessionEndedFields, frozen=True, kw_only=True, tag="staff.session_ended/1"):
    """One session ended (signed out), or every session of the account but ``keep_session_hash``
    when ``session_hash`` is empty ("sign out everywhere")."""

    keep_session_hash: str = ""


class StaffCookieKey(CookieKeyFields, frozen=True, kw_only=True, tag="staff.cookie_key/1"):
    """The key every dashboard instance signs session cookies with: the first instance publishes
    its own (compare-and-set on the subject), every other one adopts it, so a cookie made on one
    instance is good on all of them; its session (in the fold) still decides whether it is live."""


StaffAccountEvent = (
    StaffAccountAdded
    | StaffPasswordSet
    | StaffAccountChanged
    | StaffCodeUsed
    | StaffLoginLinked
    | StaffSessionStarted
    | StaffSessionEnded
    | StaffCookieKey
)
