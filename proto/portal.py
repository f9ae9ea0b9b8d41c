"""The customer portal's account events, on the gateway's ``GATEWAY_PORTAL`` stream.

Every gateway instance folds them, in stream order, into its own accounts file, so an account,
an invitation, a password, a one-time code secret or a session made on one instance is known to
all of them, and to one that starts later with an empty folder. Secrets travel only as what the
instances keep: scrypt password hashes (never a password), SHA-256 hashes of invitation links
and session ids. The one-time code secret travels as it is (every instance must check codes);
the stream is readable only by the gateway's own bus user (``proto/permissions.py``).
"""

from __future__ import annotations

from foto3d.proto.account_sessions import (
    Account,
    CodeUsedFields,
    CookieKeyFields,
    SessionEndedFields,
    SessionStartedFields,
    Sha256Hex,
)
from foto3d.proto.base import Event, Real


class PortalInvited(Event, frozen=True, kw_only=True, tag="portal.invited/1"):
    """An invitation: makes the account (member of ``customer``) on first invite, with an unusable
    password, and makes ``link_hash`` the account's one live link (an older unused one dies)."""

    account: Account
    customer: str
    email: str
    invited_by: str = ""
    unusable_password_hash: str
    link_hash: Sha256Hex
    expires_at: Real
    at: Real


class PortalInviteAccepted(Event, frozen=True, kw_only=True, tag="portal.invite_accepted/1"):
    """The link was used once: published with ``Nats-Expected-Last-Subject-Sequence`` set to the
    invitation's sequence on its own subject, so of two instances racing with one link, one wins."""

    account: Account
    link_hash: Sha256Hex
    password_hash: str
    at: Real


class PortalTotpSet(Event, frozen=True, kw_only=True, tag="portal.totp_set/1"):
    """One-time codes on (``secret``) or off (empty)."""

    account: Account
    secret: str = ""
    at: Real


class PortalCodeUsed(CodeUsedFields, frozen=True, kw_only=True, tag="portal.code_used/1"):
    """A one-time code was accepted (its time step): no instance accepts it, or an older one, again."""


class PortalSessionStarted(SessionStartedFields, frozen=True, kw_only=True, tag="portal.session_started/1"):
    pass


class PortalSessionEnded(SessionEndedFields, frozen=True, kw_only=True, tag="portal.session_ended/1"):
    """One session ended (signed out), or every session of the account when ``session_hash`` is
    empty (a new password)."""


class PortalCookieKey(CookieKeyFields, frozen=True, kw_only=True, tag="portal.cookie_key/1"):
    """The key every instance signs portal cookies with: the first instance to start publishes one
    (compare-and-set on its subject), every other one adopts it. It only makes a cookie tamper-proof;
    the session itself is proven by its random id, of which the stream holds only the hash."""


PortalEvent = (
    PortalInvited
    | PortalInviteAccepted
    | PortalTotpSet
    | PortalCodeUsed
    | PortalSessionStarted
    | PortalSessionEnded
    | PortalCookieKey
)
