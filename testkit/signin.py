"""A staff session for the dashboard: every route but the public ones needs one."""

from __future__ import annotations

from typing import Any

from foto3d.libs.auth import Auth
from foto3d.libs.auth.web import COOKIE
from foto3d.libs.config import Settings


async def staff_cookie(settings: Settings, name: str = "staff") -> dict[str, str]:
    """A valid session cookie for a staff user, created in the data folder's user store if missing."""
    auth = Auth(settings)
    if await auth.users.get(name) is None:
        await auth.users.add(name, "correct horse battery", name.title())
    return {COOKIE: await auth.issue_cookie(name)}


async def sign_in_browser(page: Any, settings: Settings, base_url: str) -> None:
    """Give a Playwright page's context a staff session for ``base_url``."""
    cookie = await staff_cookie(settings)
    await page.context.add_cookies([{"name": k, "value": v, "url": base_url} for k, v in cookie.items()])
