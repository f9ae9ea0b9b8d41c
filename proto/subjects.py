"""Every stream and event subject the system uses. All start with ``f3d.``.

Request/reply subjects are declared beside their types (:mod:`foto3d.proto.api`).
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "f3d"

LOGS_ALL = "f3d.logs.>"
JOB_EVENTS_ALL = "f3d.jobs.events.>"
JOB_SUBMIT = "f3d.jobs.submit"
WORK_TRAIN_ALL = "f3d.work.train.>"
OBJECT_EVENTS_ALL = "f3d.objects.events.>"
HEARTBEATS_ALL = "f3d.hb.>"
ALERTS_ALL = "f3d.alerts.>"
DEAD_ALL = "f3d.dead.>"
GATEWAY_CREDENTIALS_ALL = "f3d.gateway.credentials.>"
GATEWAY_USAGE_ALL = "f3d.gateway.usage.>"
GATEWAY_BANS_ALL = "f3d.gateway.bans.>"
GATEWAY_PORTAL_ALL = "f3d.gateway.portal.>"
AUTH_SIGNIN_ALL = "f3d.auth.signin.>"
AUTH_NOTICES_ALL = "f3d.auth.notices.>"
AUTH_ACCOUNTS_ALL = "f3d.auth.accounts.>"
WEBHOOKS_ALL = "f3d.webhooks.>"
CATALOG_BOOKS_ALL = "f3d.catalog.books.>"

# Stream names (their declarations: libs/bus/topology.py).
LOGS_STREAM = "LOGS"
DEAD_STREAM = "DEAD"
JOB_EVENTS_STREAM = "JOB_EVENTS"
SUBMISSIONS_STREAM = "SUBMISSIONS"
WORK_STREAM = "WORK"
QUEUE_ADVISORIES_STREAM = "QUEUE_ADVISORIES"
OBJECT_EVENTS_STREAM = "OBJECT_EVENTS"
HEARTBEATS_STREAM = "HEARTBEATS"
ALERTS_STREAM = "ALERTS"
GATEWAY_CREDENTIALS_STREAM = "GATEWAY_CREDENTIALS"
GATEWAY_USAGE_STREAM = "GATEWAY_USAGE"
GATEWAY_BANS_STREAM = "GATEWAY_BANS"
GATEWAY_PORTAL_STREAM = "GATEWAY_PORTAL"
AUTH_SIGNIN_STREAM = "AUTH_SIGNIN"
AUTH_NOTICES_STREAM = "AUTH_NOTICES"
AUTH_ACCOUNTS_STREAM = "AUTH_ACCOUNTS"
WEBHOOKS_STREAM = "WEBHOOKS"
CATALOG_BOOKS_STREAM = "CATALOG_BOOKS"
# The trainers' work consumers, watched by name by the scaler and KEDA too.
TRAINER_VIP_CONSUMER = "trainer-vip"
TRAINER_NORMAL_CONSUMER = "trainer-normal"
# MaxDeliver advisories of the WORK stream's consumers.
WORK_MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.WORK.*"

# A management request's proof of who sent it (``libs/bus/proof.py``): the sender's public
# nkey, when it signed (unix ms), a one-time nonce, and its Ed25519 signature over
# subject, time, nonce and the body's sha256. The responder takes the actor from these.
SIGNER_HEADER = "F3d-Signer"
SIGNED_AT_HEADER = "F3d-Signed-At"
NONCE_HEADER = "F3d-Nonce"
SIGNATURE_HEADER = "F3d-Signature"

_TOKEN_RE = re.compile(r"[^A-Za-z0-9_-]")


def token(value: str) -> str:
    """Make ``value`` safe as one subject token (no dots, spaces or wildcards)."""
    return _TOKEN_RE.sub("_", value) or "_"


def logs(source_kind: str, source_id: str) -> str:
    return f"f3d.logs.{token(source_kind)}.{token(source_id)}"


def job_events(job_id: str) -> str:
    return f"f3d.jobs.events.{token(job_id)}"


def work_train(priority: str) -> str:
    return f"f3d.work.train.{token(priority)}"


def object_events(object_id: str) -> str:
    return f"f3d.objects.events.{token(object_id)}"


def customer_events(slug: str) -> str:
    """A customer's events, on OBJECT_EVENTS beside the objects' (one token longer than
    an object's subject, so never one)."""
    return f"f3d.objects.events.customers.{token(slug)}"


def heartbeat(kind: str, pid: str) -> str:
    return f"f3d.hb.{token(kind)}.{token(pid)}"


def heartbeats_of(kind: str) -> str:
    """Every participant of one kind, e.g. all trainers."""
    return f"f3d.hb.{token(kind)}.*"


def alerts(severity: str) -> str:
    return f"f3d.alerts.{token(severity)}"


def dead(origin: str) -> str:
    """Dead-letter subject for messages that came from ``origin`` (a stream name, lowercased)."""
    return f"f3d.dead.{token(origin.lower())}"


# Headers of a dead letter (``libs/bus/dead.py`` writes them; ``nats stream view DEAD`` shows them).
DEAD_REASON = "F3D-Reason"  # why it could not be processed (at most 1,000 characters)
DEAD_ORIGINAL_SUBJECT = "F3D-Original-Subject"  # where it was published
DEAD_CONSUMER = "F3D-Consumer"  # the durable consumer that gave up on it, where one did
DEAD_JOB_ID = "F3D-Job-Id"  # the job it belonged to, for work the queue gave up on


def gateway_credentials(credential_id: str) -> str:
    """Events of one customer credential (issued, revoked)."""
    return f"f3d.gateway.credentials.{token(credential_id)}"


def gateway_usage(instance: str) -> str:
    """Usage deltas of one token gateway instance."""
    return f"f3d.gateway.usage.{token(instance)}"


def gateway_bans(instance: str) -> str:
    """Automatic IP bans decided by one token gateway instance."""
    return f"f3d.gateway.bans.{token(instance)}"


def gateway_portal_accounts() -> str:
    """Customer portal account events (sessions, one-time codes) of every gateway instance."""
    return "f3d.gateway.portal.accounts"


def gateway_portal_invite(link_hash: str) -> str:
    """One invitation link's events: invited, then at most one acceptance (compare-and-set here)."""
    return f"f3d.gateway.portal.invite.{token(link_hash)}"


def gateway_portal_session(session_hash: str) -> str:
    """One portal session's events (started, ended): they expire from the stream after it does."""
    return f"f3d.gateway.portal.session.{token(session_hash)}"


def gateway_portal_cookie_key() -> str:
    """The portal's cookie key, published once (compare-and-set)."""
    return "f3d.gateway.portal.cookie_key"


def auth_signin(instance: str) -> str:
    """Checked sign-in attempts and unlocks, as seen by one dashboard instance (or the CLI)."""
    return f"f3d.auth.signin.{token(instance)}"


def auth_notices(instance: str) -> str:
    """Mails for one staff member about their account, for the notifier to send."""
    return f"f3d.auth.notices.{token(instance)}"


def _row_key(key: str) -> str:
    """``key`` as one subject token that no other key shares: the books' stream keeps only the
    newest message of a subject, so two ids that ``token`` maps alike must not meet there."""
    safe = token(key)
    return safe if safe == key else f"{safe}_{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def auth_account(account_key: str) -> str:
    """One staff account's events (added, password, e-mail, codes on/off, disabled, logins), keyed
    by a hash of its name (a name may hold dots): its first event is a compare-and-set on it."""
    return f"f3d.auth.accounts.user.{token(account_key)}"


def auth_account_code(account_key: str) -> str:
    """A staff account's used one-time code steps (they expire from the stream)."""
    return f"f3d.auth.accounts.code.{token(account_key)}"


def auth_session(session_hash: str) -> str:
    """One staff session's events (started, ended): they expire from the stream after it does."""
    return f"f3d.auth.accounts.session.{token(session_hash)}"


def auth_cookie_key() -> str:
    """The dashboards' cookie signing key, published once (compare-and-set)."""
    return "f3d.auth.accounts.cookie_key"


def catalog_books(book: str, key: str) -> str:
    """One row of the catalog's subscription or webhook book (``proto/books.py``); the stream
    keeps the newest message of each."""
    return f"f3d.catalog.books.{token(book)}.{_row_key(key)}"


def catalog_book_history(subscription_id: str, entry: str) -> str:
    """One history entry of a subscription (``entry``: a digest of its natural key), each on
    its own subject so that keeping the newest message per subject keeps every entry."""
    return f"f3d.catalog.books.history.{_row_key(subscription_id)}.{token(entry)}"


def webhooks(customer: str) -> str:
    """Webhook deliveries waiting to reach one customer's endpoints."""
    return f"f3d.webhooks.{token(customer)}"
