"""Enrollment tokens: short-lived secrets that let one host obtain certificates for its own name.

A token is ``secrets.token_urlsafe(32)`` (256 bits). The central stores only its SHA-256, so a database
dump lets nobody enroll, and a presented token is found by looking up the hash of what was presented: no
comparison ever runs over the secret itself, so response timing tells nothing about it. Uses are counted
by one conditional UPDATE, so a single-use token presented at the same moment to two central instances on
one PostgreSQL issues one certificate, not two.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.auth import Principal
from secl.central.errors import NotFound, Unauthorized
from secl.central.store.db import rowcount
from secl.central.store.models import EnrollmentToken, utcnow

DEFAULT_TTL_SECONDS = 3600
MAX_TTL_SECONDS = 30 * 86400
MAX_USES = 1000
DEFAULT_KINDS = ("tls", "aik")
#: What a host holding an enrollment token may do besides getting certificates, by token kind: "aik"
#: lets it enroll its AIK with the Privacy CA and register itself as a host (its own name only).
HOST_PERMISSIONS = {"aik": ("HVS:aik:certify", "HVS:hosts:create")}
HOST_PRINCIPAL_PREFIX = "host:"

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def parse_ttl(text: str) -> int:
    """``3600``, ``45s``, ``30m``, ``1h`` or ``2d`` as seconds (1 second to 30 days)."""
    match = _TTL.match(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 3600, 30m, 1h or 2d")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 1 <= seconds <= MAX_TTL_SECONDS:
        raise ValueError(
            f"{text!r}: the lifetime must be between 1 second and {MAX_TTL_SECONDS // 86400} days"
        )
    return seconds


def normalize_host(host: str) -> str:
    """A DNS name (lower case, no trailing dot) or an IP address in its canonical text form."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.lower().removesuffix(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{host!r} is not a DNS host name or an IP address")
    return name


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def kind_allowed(token_kinds: list[str], kind: str) -> bool:
    """``tls`` (server and client) also allows either half: a narrower certificate is less privilege."""
    return kind in token_kinds or ("tls" in token_kinds and kind in ("tls-server", "tls-client"))


def state(token: EnrollmentToken, now: datetime | None = None) -> str:
    if token.expires_at <= (now or utcnow()):
        return "expired"
    return "used-up" if token.uses >= token.max_uses else "active"


@dataclass(frozen=True)
class Minted:
    value: str  # the secret: shown once, never stored
    row: EnrollmentToken


def mint(
    session: Session,
    *,
    host: str,
    kinds: list[str],
    ttl_seconds: int,
    max_uses: int,
    created_by: str,
) -> Minted:
    value = secrets.token_urlsafe(32)
    row = EnrollmentToken(
        token_sha256=hash_token(value),
        host=normalize_host(host),
        kinds=sorted(set(kinds)),
        expires_at=utcnow() + timedelta(seconds=ttl_seconds),
        created_by=created_by,
        uses=0,
        max_uses=max_uses,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "enrollment-token.created",
        actor=created_by,
        outcome="success",
        target=row.host,
        token_id=row.id,
        kinds=row.kinds,
        max_uses=max_uses,
        expires_at=row.expires_at.isoformat(),
    )
    session.commit()
    return Minted(value, row)


def find(session: Session, presented: str) -> EnrollmentToken | None:
    return session.scalar(
        select(EnrollmentToken).where(EnrollmentToken.token_sha256 == hash_token(presented))
    )


def claim_use(session: Session, token_id: str) -> bool:
    """Count one use, atomically: false if the token expired or was used up meanwhile (by anyone)."""
    result = session.execute(
        update(EnrollmentToken)
        .where(
            EnrollmentToken.id == token_id,
            EnrollmentToken.uses < EnrollmentToken.max_uses,
            EnrollmentToken.expires_at > utcnow(),
        )
        .values(uses=EnrollmentToken.uses + 1)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def search(session: Session, host: str | None) -> list[EnrollmentToken]:
    query = select(EnrollmentToken).order_by(EnrollmentToken.created_at.desc())
    if host:
        query = query.where(EnrollmentToken.host == host.lower())
    return list(session.scalars(query))


def delete(session: Session, token_id: str, *, actor: str) -> None:
    token = session.get(EnrollmentToken, token_id)
    if token is None:
        raise NotFound(f"no enrollment token with id {token_id}")
    session.delete(token)
    audit.record(
        session,
        "enrollment-token.deleted",
        actor=actor,
        outcome="success",
        target=token.host,
        token_id=token.id,
    )
    session.commit()


def principal_for(session: Session, presented: str) -> Principal:
    """The host an enrollment token speaks for, as a principal with the permissions its kinds grant.

    Certificate issuance counts uses (``POST /cms/v1/certificates``); other host operations only need the
    token to be known and unexpired, because a host's setup makes several calls with one token.
    """
    token = find(session, presented)
    if token is None:
        raise Unauthorized("the token is not valid", code="token-invalid")
    if state(token) == "expired":
        raise Unauthorized(
            f"the enrollment token expired at {token.expires_at.isoformat()}", code="enrollment-token-expired"
        )
    permissions = tuple(p for kind in token.kinds for p in HOST_PERMISSIONS.get(kind, ()))
    return Principal(HOST_PRINCIPAL_PREFIX + token.host, ("enrollment-token",), permissions, token.id)


def host_of(principal: Principal) -> str | None:
    """The host name of a principal that an enrollment token stands for, or None for a user."""
    if principal.roles == ("enrollment-token",) and principal.username.startswith(HOST_PRINCIPAL_PREFIX):
        return principal.username.removeprefix(HOST_PRINCIPAL_PREFIX)
    return None
