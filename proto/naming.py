"""The naming standard for object ids: ``<customer>-<object>-<NNN>``.

Lowercase ASCII slugs joined by dashes and a three-or-more digit serial, e.g.
``acme-desk-lamp-001``. The customer slug is the first token; ids are unique
and never reused. Every dataset, job, log record, file and link carries one.
"""

from __future__ import annotations

import re
import unicodedata

from foto3d.proto.rules import (
    CUSTOMER_PART,
    CUSTOMER_PATTERN,
    MAX_OBJECT_ID,
    OBJECT_PART,
    RULE_WORDING,
    SERIAL_PART,
)

__all__ = ["CUSTOMER_RE", "MAX_OBJECT_ID", "OBJECT_ID_RE", "NamingError"]

CUSTOMER_RE = re.compile(CUSTOMER_PATTERN)
# The rule of ``rules.ObjectId`` with its parts named, for reading an id's customer.
OBJECT_ID_RE = re.compile(
    f"^(?P<customer>{CUSTOMER_PART})-(?P<object>{OBJECT_PART})-(?P<serial>{SERIAL_PART})$"
)


class NamingError(ValueError):
    pass


def slugify(text: str, max_len: int = 40) -> str:
    """ASCII lowercase slug: accents folded, anything else becomes a dash."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_len].strip("-")


def validate_object_id(object_id: str) -> str:
    """Return ``object_id`` if it follows the standard, else raise NamingError saying why."""
    if len(object_id) > MAX_OBJECT_ID:
        raise NamingError(f"object id {object_id!r} is longer than {MAX_OBJECT_ID} characters")
    # fullmatch: ``$`` alone would let a trailing newline through
    if not OBJECT_ID_RE.fullmatch(object_id):
        raise NamingError(f"object id {object_id!r} does not follow the naming standard{_STANDARD}")
    return object_id


# "… <customer>-<object>-<NNN> (lowercase letters, …)": the rule's own wording, after its "not an object id by".
_STANDARD = RULE_WORDING[f"^{CUSTOMER_PART}-{OBJECT_PART}-{SERIAL_PART}$"].removeprefix(
    "not an object id by the naming standard"
)


def customer_of(object_id: str) -> str:
    m = OBJECT_ID_RE.fullmatch(object_id)
    if not m:
        raise NamingError(f"object id {object_id!r} does not follow the naming standard")
    return m.group("customer")


def make_object_id(customer: str, name: str, serial: int) -> str:
    cust = slugify(customer, 20).replace("-", "")
    if not cust or not CUSTOMER_RE.match(cust):
        raise NamingError(f"customer {customer!r} has no letters or digits to build an id from")
    obj = slugify(name, 40)
    if not obj:
        raise NamingError(f"display name {name!r} has no letters or digits to build an id from")
    return validate_object_id(f"{cust}-{obj}-{serial:03d}")
