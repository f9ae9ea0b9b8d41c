"""The token gateway's contract: its streams' events, its NATS API and its customer HTTP bodies.

Credentials travel on the bus only as hashes (``credential.issued/1``), so every gateway
instance can check them while the secret itself is shown once, to whoever issued it.
Usage is counted per instance and shared as ``gateway.usage/1`` deltas, so the totals each
instance answers with are the totals of all of them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

from foto3d.proto.api import Api
from foto3d.proto.base import Count, Event, Real
from foto3d.proto.jobs import SplatFormatName, UpAxis
from foto3d.proto.rules import CredentialId, CustomerSlug, ObjectId, Origin

# ---------------------------------------------------------------------------
# Wire names
# ---------------------------------------------------------------------------

# Streams and event subjects: foto3d.proto.subjects (GATEWAY_CREDENTIALS, GATEWAY_USAGE).
# Log records of the access log carry this source kind (``foto3d logs --source-kind access``).
ACCESS_LOG_SOURCE_KIND = "access"


# ---------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------


class CredentialKind(StrEnum):
    """``secret``: ``sk_…`` for a customer's servers (Bearer). ``publishable``: ``pk_…`` for web pages."""

    SECRET = "secret"
    PUBLISHABLE = "publishable"


class CredentialIssued(Event, frozen=True, kw_only=True, tag="credential.issued/1"):
    credential_id: CredentialId
    kind: CredentialKind
    customer: CustomerSlug
    token_hash: str  # sha256 hex of the whole token; the token itself is never stored
    prefix: str  # first characters of the token, shown in lists so a person can tell them apart
    label: str = ""
    models: list[str] = msgspec.field(default_factory=list)  # empty: every model of the customer
    origins: list[Origin] = msgspec.field(default_factory=list)
    expires_at: Real | None = None
    created_at: Real
    actor: str = ""


class CredentialRevoked(Event, frozen=True, kw_only=True, tag="credential.revoked/1"):
    credential_id: CredentialId
    revoked_at: Real
    actor: str = ""
    reason: str = ""


CredentialEvent = CredentialIssued | CredentialRevoked


class UsageCount(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    day: str  # YYYY-MM-DD, UTC
    customer: str
    object_id: str
    credential_id: str
    requests: Count
    denied: Count
    bytes: Count


class UsageDelta(Event, frozen=True, kw_only=True, tag="gateway.usage/1"):
    """Counts one gateway instance added since its previous delta (``delta_id`` = Nats-Msg-Id)."""

    delta_id: str
    instance: str
    counts: list[UsageCount]


#: The longest automatic ban; the bans stream keeps this long, so a gateway that starts later
#: still learns every ban in force.
MAX_BAN_S = 7 * 86400.0


class IpBanned(Event, frozen=True, kw_only=True, tag="gateway.ban/1"):
    """One instance banned a client address for too many bad credentials; every instance refuses
    it until ``until`` (wall clock), so a client cannot move on to the next instance."""

    ip: Annotated[str, msgspec.Meta(min_length=2, max_length=64)]
    until: Real
    reason: Annotated[str, msgspec.Meta(max_length=200)] = ""
    instance: str = ""


class CredentialInfo(msgspec.Struct, frozen=True, kw_only=True):
    credential_id: str
    kind: CredentialKind
    customer: str
    prefix: str
    label: str
    models: list[str]
    origins: list[str]
    expires_at: Real | None
    created_at: Real
    created_by: str
    revoked_at: Real | None = None
    revoked_by: str = ""


# ---------------------------------------------------------------------------
# NATS API bodies (f3d.api.gateway.*)
# ---------------------------------------------------------------------------


#: Bounds of one credential: how many models and origins it may name, how long it may live.
MAX_MODELS = 1000
MAX_ORIGINS = 50
MAX_DAYS = 3650.0


class IssueRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Decoding checks each field; the rules between fields (a model of this customer, origins for
    publishable keys only, …) are the token gateway's (``token_gateway/manage.py``)."""

    customer: CustomerSlug
    kind: CredentialKind
    label: Annotated[str, msgspec.Meta(max_length=200)] = ""
    models: Annotated[list[ObjectId], msgspec.Meta(max_length=MAX_MODELS)] = msgspec.field(
        default_factory=list
    )
    origins: Annotated[list[Origin], msgspec.Meta(max_length=MAX_ORIGINS)] = msgspec.field(
        default_factory=list
    )
    # Days until it expires; None: never (allowed for secret tokens only).
    expires_in_days: Annotated[float, msgspec.Meta(gt=0.0, le=MAX_DAYS)] | None = 90.0
    actor: str = ""


class IssueReply(msgspec.Struct, frozen=True, kw_only=True):
    credential: CredentialInfo
    token: str  # shown once


class ListRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    customer: CustomerSlug | None = None
    include_revoked: bool = False


class ListReply(msgspec.Struct, frozen=True, kw_only=True):
    credentials: list[CredentialInfo] = msgspec.field(default_factory=list)


class RevokeRequest(msgspec.Struct, frozen=True, kw_only=True):
    credential_id: CredentialId
    reason: str = ""
    actor: str = ""


class RevokeReply(msgspec.Struct, frozen=True, kw_only=True):
    credential: CredentialInfo


class UsageQuery(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    customer: CustomerSlug | None = None
    object_id: ObjectId | None = None
    since: str | None = None  # YYYY-MM-DD inclusive
    until: str | None = None  # YYYY-MM-DD inclusive


class UsageRow(msgspec.Struct, frozen=True, kw_only=True):
    day: str
    customer: str
    object_id: str
    requests: Count
    denied: Count
    bytes: Count


class UsageReply(msgspec.Struct, frozen=True, kw_only=True):
    rows: list[UsageRow] = msgspec.field(default_factory=list)


# The endpoints `foto3d tokens` calls (f3d.api.gateway.*); refusals are ServiceErrors.
TOKENS_ISSUE: Api[IssueRequest, IssueReply] = Api("gateway", "tokens-issue", IssueRequest, IssueReply)
TOKENS_LIST: Api[ListRequest, ListReply] = Api("gateway", "tokens-list", ListRequest, ListReply)
TOKENS_REVOKE: Api[RevokeRequest, RevokeReply] = Api("gateway", "tokens-revoke", RevokeRequest, RevokeReply)
USAGE: Api[UsageQuery, UsageReply] = Api("gateway", "usage", UsageQuery, UsageReply)


# ---------------------------------------------------------------------------
# The customer portal (``/portal/`` on the customer listener): accounts are the gateway's
# ---------------------------------------------------------------------------

#: How long an invitation link works (hours).
PORTAL_INVITE_HOURS = 72.0
#: What the portal's actions are recorded as done by: ``portal:<account>`` (an account is a mail address).
PORTAL_ACTOR_PREFIX = "portal:"


class PortalInviteRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Invite a person to the portal of ``customer``: an account named by the mail address (made
    on first invite) and a one-time link, mailed to it, where they choose their password. A new
    invite for an existing account replaces its unused links (it doubles as a password reset)."""

    customer: CustomerSlug
    email: Annotated[
        str, msgspec.Meta(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9.-]+$")
    ]
    actor: str = ""


class PortalInviteReply(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    customer: str
    expires_at: Real
    # Handed to the notifier's mail path (it delivers, retrying; `foto3d alerts` shows failures).
    mailed: bool


PORTAL_INVITE: Api[PortalInviteRequest, PortalInviteReply] = Api(
    "gateway", "portal-invite", PortalInviteRequest, PortalInviteReply
)


# ---------------------------------------------------------------------------
# Customer HTTP bodies (the customer listener, /v1/...)
# ---------------------------------------------------------------------------

# The dashboard page (staff only) where the gateway shows a live model as customers get it;
# the catalog's "live link" points here.
STAFF_MODEL_PAGE = "/customers/models/{object_id}"
# Where staff read any published file of the local store, by its key (the dashboard, behind
# sign-in, served by the gateway, which reads that store): the publisher's addresses for the
# local store (``PublishedFile.url``, ``live_url``, the viewer.json's links) point here.
STAFF_PUBLISHED_PREFIX = "/customers/published/"

ModelStatus = Literal["production", "demo", "test"]


class ModelFile(msgspec.Struct, frozen=True, kw_only=True):
    format: SplatFormatName  # the splat format registry's names, as in job options and artifacts
    url: str
    bytes: Count
    content_type: str
    sha256: str
    # The file's up axis as stored (Artifact.up; the renderer reads it so and turns it screen-up).
    up: UpAxis | None = None


class ModelReply(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/models/{object_id}``: the viewer config and a time-limited link per file."""

    object_id: str
    name: str
    status: ModelStatus
    model_version: Count
    config: dict[str, Any]  # the published viewer.json, passed through
    files: list[ModelFile]  # smallest first
    poster_url: str | None
    expires_at: str  # RFC 3339 UTC; every link in this reply works until then


class ErrorReply(msgspec.Struct, frozen=True, kw_only=True):
    error: str  # machine-readable: not_found, unauthorized, forbidden, rate_limited, banned, bad_request,
    # method_not_allowed, internal
    message: str


class HealthReply(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["ok", "starting"]
    models: Count
    version: str


SCHEMAS = (
    CredentialInfo,
    IssueRequest,
    IssueReply,
    ListRequest,
    ListReply,
    RevokeRequest,
    RevokeReply,
    UsageQuery,
    UsageReply,
    ModelReply,
    ErrorReply,
    HealthReply,
)
