"""Staff sign-in: users with scrypt-hashed passwords (and optional one-time codes), server-side
sessions named by signed cookies, or a trusted proxy header; guessing limited per account and
address (docs/security.md)."""

from foto3d.libs.auth.users import User, UserError, UserStore
from foto3d.libs.auth.web import Auth, AuthSettings

__all__ = ["Auth", "AuthSettings", "User", "UserError", "UserStore"]
