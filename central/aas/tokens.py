"""JWTs for the central's API: ES256, with ``kid``, ``iat``, ``exp``, roles and permissions.

The signing key is a file that ``secl-central setup`` creates (0600); every central instance configured
with the same file verifies every other's tokens, so no token state lives in one process.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from secl.central.auth import Principal
from secl.central.errors import Unauthorized

ISSUER = "secl-central"
_LEEWAY = 5  # seconds of clock skew tolerated between central instances
ALGORITHM = "ES256"


class TokenService:
    def __init__(self, private_key: ec.EllipticCurvePrivateKey, ttl_seconds: int) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or private_key.curve.name != "secp256r1":
            raise ValueError("the token signing key must be an EC P-256 key (ES256)")
        self._private_key = private_key
        self._public_key = private_key.public_key()
        self.ttl = timedelta(seconds=ttl_seconds)
        self._verified = _BoundedCache(4096)
        der = self._public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:16]).decode().rstrip("=")

    @classmethod
    def from_file(cls, path: Path, ttl_seconds: int) -> TokenService:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: not an EC private key")
        return cls(key, ttl_seconds)

    def issue(self, username: str, roles: list[str], permissions: list[str]) -> tuple[str, datetime]:
        now = datetime.now(UTC)
        expires = now + self.ttl
        claims = {
            "iss": ISSUER,
            "sub": username,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": str(uuid.uuid4()),
            "roles": roles,
            "permissions": permissions,
        }
        token = jwt.encode(claims, self._private_key, algorithm=ALGORITHM, headers={"kid": self.kid})
        return token, expires

    def verify(self, token: str) -> Principal:
        """Verify a token and return who it speaks for; raise Unauthorized otherwise.

        A token that verified once is remembered (a bounded LRU keyed by the whole token string), so a
        client's repeated requests skip the ECDSA check; expiry is still checked on every use.
        """
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() < expires + _LEEWAY:
                return principal
            raise Unauthorized("the token has expired; log in again", code="token-expired")
        principal, expires = self._verify_signature(token)
        self._verified.put(token, (principal, expires))
        return principal

    def _verify_signature(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") != self.kid:
                raise Unauthorized(
                    "the token was not issued by this central (unknown key id)", code="token-invalid"
                )
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss"]},
                leeway=_LEEWAY,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired; log in again", code="token-expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("the token is not valid", code="token-invalid") from None
        roles, permissions = claims.get("roles", []), claims.get("permissions", [])
        if not _strings(roles) or not _strings(permissions):
            raise Unauthorized("the token's roles or permissions are malformed", code="token-invalid")
        principal = Principal(claims["sub"], tuple(roles), tuple(permissions), str(claims.get("jti", "")))
        return principal, float(claims["exp"])


class _BoundedCache:
    """A thread-safe LRU map (gunicorn's gthread workers verify tokens from several threads)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[Principal, float] | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: str, value: tuple[Principal, float]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def generate_signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())
