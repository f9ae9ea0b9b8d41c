"""Turning one-time codes on from an account page, for every population alike (the staff's
dashboards and the customers' portal): the same steps, checks and words in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from foto3d.libs.auth.totp import secret_bytes
from foto3d.libs.auth.users import UserStore

TOTP_ON = "One-time codes are on: signing in asks for one from now on."


@dataclass(frozen=True)
class EnrolRefused:
    """Why the codes stayed off, and the key to show again ("": the person starts again)."""

    note: str
    enrol: str


async def enrol_totp(
    users: UserStore,
    name: str,
    form: Mapping[str, Any],
    password_ok: Callable[[str], Awaitable[str | None]],
) -> EnrolRefused | None:
    """Turn codes on for ``name`` once the form proves both the password (``password_ok`` says
    what is wrong with it, and counts a wrong one as the caller's limits do) and that the phone
    holds the key the page showed. None when they are on."""
    secret = str(form.get("secret", ""))
    try:
        secret_bytes(secret)
    except ValueError:
        return EnrolRefused("That key is not valid; start again.", "")
    why = await password_ok(str(form.get("current", "")))
    if why:
        return EnrolRefused(why, secret)
    if not await users.check_code(name, str(form.get("code", "")), secret=secret):
        return EnrolRefused("That code is not right (is the phone's clock right?).", secret)
    await users.set_totp(name, secret)
    return None
