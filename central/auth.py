"""Who is calling: bearer-token authentication and SecL-style permission matching.

Permissions are ``service:resource:action`` (``HVS:hosts:create``); a role may hold wildcards per part
(``HVS:hosts:*``, ``*:*:*``). Tokens are verified by :class:`secl.central.aas.tokens.TokenService`, which
the application factory stores in ``app.extensions``.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from secl.central.errors import Unauthorized


@dataclass(frozen=True, slots=True)
class Principal:
    username: str
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    token_id: str

    def allows(self, needed: str) -> bool:
        return any(permission_matches(held, needed) for held in self.permissions)


def permission_matches(held: str, needed: str) -> bool:
    """Whether a held permission (wildcards allowed per part) grants the needed one."""
    held_parts, needed_parts = held.split(":"), needed.split(":")
    if len(held_parts) != 3 or len(needed_parts) != 3:
        return False
    return all(h in ("*", n) for h, n in zip(held_parts, needed_parts, strict=True))


def authenticate(header: str | None) -> Principal:
    if not header:
        raise Unauthorized("this operation needs a bearer token (POST /aas/v1/token)", code="token-missing")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'", code="token-malformed")
    token = token.strip()
    if token.count(".") != 2:
        # Not a JWT: an enrollment token, with which a joining host makes its setup calls.
        return current_app.extensions["secl.enrollment-principals"](token)
    return current_app.extensions["secl.tokens"].verify(token)
