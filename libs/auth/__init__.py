"""Staff sign-in: users with scrypt-hashed passwords, signed session cookies, or a trusted proxy header."""

from foto3d.libs.auth.users import User, UserError, UserStore
from foto3d.libs.auth.web import Auth, AuthSettings

__all__ = ["Auth", "AuthSettings", "User", "UserError", "UserStore"]
