"""The rules for the names every part shares, one ``Annotated`` type each.

A request Struct that types a field with one of these is checked by decoding it: the catalog,
the queue, the token gateway and the CLI refuse the same values with the same words, and the
JSON Schemas in ``docs/schemas`` state the rule. ``proto/naming.py`` builds its parsing regexes
from the same parts. Patterns are written in the common subset of Python's ``re`` and ECMA-262
(JSON Schema's dialect): ASCII classes only (``[0-9]``, never ``\\d``, which takes any Unicode
digit), anchored at both ends.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

CUSTOMER_PART = "[a-z0-9]+"
OBJECT_PART = "[a-z0-9]+(?:-[a-z0-9]+)*"
SERIAL_PART = "[0-9]{3,}"
MAX_CUSTOMER = 20
MAX_OBJECT_ID = 80

CUSTOMER_PATTERN = f"^{CUSTOMER_PART}$"
OBJECT_ID_PATTERN = f"^{CUSTOMER_PART}-{OBJECT_PART}-{SERIAL_PART}$"
CREDENTIAL_ID_PART = "[0-9a-f]{16}"
CREDENTIAL_ID_PATTERN = f"^{CREDENTIAL_ID_PART}$"
ORIGIN_PATTERN = "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$"
HOST_NAME_PATTERN = "^[a-z0-9][a-z0-9-]{0,31}$"

CustomerSlug = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_CUSTOMER,
        pattern=CUSTOMER_PATTERN,
        description="A customer id: 1-20 lowercase letters and digits (the first part of object ids).",
    ),
]
ObjectId = Annotated[
    str,
    msgspec.Meta(
        max_length=MAX_OBJECT_ID,
        pattern=OBJECT_ID_PATTERN,
        description="An object id by the naming standard <customer>-<object>-<NNN>, e.g. acme-chair-001.",
    ),
]
CredentialId = Annotated[
    str,
    msgspec.Meta(
        pattern=CREDENTIAL_ID_PATTERN, description="A credential id: 16 lowercase hexadecimal digits."
    ),
]
# An allowed origin exactly as browsers send it: scheme://host[:port], no path.
Origin = Annotated[
    str,
    msgspec.Meta(
        max_length=200,
        pattern=ORIGIN_PATTERN,
        description="A web origin as browsers send it: scheme://host[:port], no path.",
    ),
]

# A site's or an instance's name (settings `site`, `[catalog] instance`, `[notifier] instance`):
# it becomes a subject token and a consumer's name, hence no dots and a length bound.
HostName = Annotated[str, msgspec.Meta(pattern=HOST_NAME_PATTERN)]

#: What each rule asks for, worded for the person whose value broke it.
RULE_WORDING: dict[str, str] = {
    CUSTOMER_PATTERN: "a customer id is 1-20 lowercase letters and digits, no dashes or spaces (e.g. acme)",
    OBJECT_ID_PATTERN: "not an object id by the naming standard <customer>-<object>-<NNN> "
    "(lowercase letters, digits and dashes, ending in a serial number such as acme-chair-001)",
    CREDENTIAL_ID_PATTERN: "a credential id is 16 lowercase hexadecimal digits",
    ORIGIN_PATTERN: "an origin is scheme://host[:port] with no path, e.g. https://shop.example.com",
    HOST_NAME_PATTERN: "a site or instance name is 1-32 lowercase letters, digits and dashes, "
    "starting with a letter or digit (e.g. onprem)",
}

_ERROR = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_REGEX = re.compile(r"^Expected `str` matching regex '(?P<pattern>.*)'$", re.DOTALL)


def readable(exc: Exception) -> str:
    """A decoding error as a sentence: the field, then what its rule asks for.

    ``Expected `str` matching regex '^[a-z0-9]+$' - at `$.customer``` reads
    ``customer: a customer id is 1-20 lowercase letters and digits, …``; errors of other
    shapes keep msgspec's own words, with the field's path first.
    """
    m = _ERROR.match(str(exc))
    what, path = (m.group("what"), m.group("path")) if m else (str(exc), None)
    rx = _REGEX.match(what)
    if rx and rx.group("pattern") in RULE_WORDING:
        what = RULE_WORDING[rx.group("pattern")]
    else:
        what = re.sub(r"^Expected `(\w+)`", r"expected a \1", what).replace("`", "")
    if not path:
        return what
    where = path.lstrip(".").replace(".", " ")
    return f"{where}: {what}"
