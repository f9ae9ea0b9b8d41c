"""What a password must be: long enough, and not one every guesser tries first.

NIST SP 800-63B's rules for memorised secrets: a minimum length, and a check against values
known to be commonly used or compromised, with no composition rules ("one digit, one
symbol") that only make people write passwords down. The list ships with the product
(``common-passwords.txt`` beside this module), so the check works offline.
"""

from __future__ import annotations

import functools
from pathlib import Path

MIN_PASSWORD = 8
COMMON_FILE = Path(__file__).with_name("common-passwords.txt")


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip().lower() for w in lines if w.strip() and not w.startswith("#"))


def password_problem(password: str, user: str = "") -> str | None:
    """Why ``password`` will not do, or None when it will."""
    if len(password) < MIN_PASSWORD:
        return f"password must be at least {MIN_PASSWORD} characters"
    low = password.strip().lower()
    if low in common_passwords():
        return "that password is on the list of the most common ones; choose another"
    if user and low == user.lower():
        return "the password must not be the user name"
    return None
