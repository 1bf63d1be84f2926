"""Who is calling: bearer-token authentication and SecL-style permission matching.

Permissions are ``service:resource:action`` (``HVS:hosts:create``); a role may hold wildcards per part
(``HVS:hosts:*``, ``*:*:*``). Tokens are verified by :class:`secl.central.aas.tokens.TokenService`, part of
the service context; a token that is not a JWT is an enrollment token, looked up by the caller's function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from secl.central.errors import Unauthorized
from secl.core.hostassertion import is_host_assertion


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


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Principal: ...


def authenticate(
    header: str | None,
    tokens: TokenVerifier,
    enrolled: Callable[[str], Principal],
    asserted: Callable[[str], Principal] | None = None,
) -> Principal:
    """Who the ``Authorization`` header speaks for: a user's JWT, a joining host's enrollment token, or an
    enrolled host's assertion signed with its certificate's key (``asserted``)."""
    if not header:
        raise Unauthorized("this operation needs a bearer token (POST /aas/v1/token)", code="token-missing")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'", code="token-malformed")
    token = token.strip()
    if token.count(".") != 2:
        # Not a JWT: an enrollment token, with which a joining host makes its setup calls.
        return enrolled(token)
    if asserted is not None and is_host_assertion(token):
        return asserted(token)
    return tokens.verify(token)
