"""The shape of every parameter a stranger controls: one pattern each.

The handlers validate with these and the OpenAPI document declares them, so what the document
promises and what the gateway accepts cannot drift apart. Patterns are written in the common
subset of Python's ``re`` and ECMA-262 (JSON Schema's dialect): ASCII classes only (``[0-9]``,
never ``\\d``, which takes any Unicode digit), anchored, and checked with ``fullmatch`` (``$``
alone lets a trailing newline through).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from foto3d.proto.rules import CREDENTIAL_ID_PART, CREDENTIAL_ID_PATTERN, MAX_OBJECT_ID, OBJECT_ID_PATTERN
from foto3d.services.token_gateway.credentials import SECRET_PART


@dataclass(frozen=True)
class Shape:
    pattern: str
    max_length: int

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    def fits(self, value: str) -> bool:
        return len(value) <= self.max_length and self.regex.fullmatch(value) is not None

    def schema(self) -> dict[str, object]:
        """The JSON Schema for a string of this shape."""
        return {"type": "string", "pattern": self.pattern, "maxLength": self.max_length}


OBJECT_ID = Shape(OBJECT_ID_PATTERN, MAX_OBJECT_ID)
CREDENTIAL_ID = Shape(CREDENTIAL_ID_PATTERN, 16)
# The HMAC-SHA256 of a link, base64url without padding.
SIGNATURE = Shape("^[A-Za-z0-9_-]{43}$", 43)
# A link's expiry, unix seconds.
EXPIRY = Shape("^[0-9]{1,12}$", 12)
FILE_NAME = Shape("^[a-z0-9][a-z0-9.-]{0,120}$", 121)
DAY = Shape("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", 10)
# ``<exp>.<credential id>.<embedding origin, base64url>.<signature>`` (see embed.issue).
EMBED_PASS = Shape(
    rf"^([0-9]{{1,12}})\.({CREDENTIAL_ID_PART})\.([A-Za-z0-9_-]{{0,400}})\.([A-Za-z0-9_-]{{43}})$",
    12 + 16 + 400 + 43 + 3,
)
SECRET_TOKEN = Shape(f"^sk_{CREDENTIAL_ID_PART}_{SECRET_PART}$", 63)
PUBLISHABLE_KEY = Shape(f"^pk_{CREDENTIAL_ID_PART}_{SECRET_PART}$", 63)
# ``scope=test`` marks a link given out to a test origin (links.TEST_SCOPE); nothing else is one.
LINK_SCOPES = ("test",)
