"""Hosts signing in with their enrollment certificate (a host assertion, :mod:`secl.core.hostassertion`).

A host part that has enrolled (the workload agent, beside the trust agent) authenticates to the central
with a short JWT signed by the key of its TLS certificate, instead of a password in a file. The central
accepts it when the core's checks hold (issued by this central's CA, valid, for client authentication,
naming the host, fresh, for this central) *and* the certificate is one it issued and recorded, unexpired.
The principal is ``host:<name>`` with the permissions every enrolled host has, no more.
"""

from __future__ import annotations

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from secl.central.auth import Principal
from secl.central.cms import pki
from secl.central.errors import Unauthorized
from secl.central.store.models import IssuedCertificate, utcnow
from secl.core.hostassertion import HostAssertionError, verify_host_assertion

HOST_ROLE = "host"
HOST_PREFIX = "host:"
#: What an enrolled host may do in its own name: have its TPM keys certified, ask for its keys and file
#: its VM reports. Every route still checks that a host acts only for itself.
HOST_PERMISSIONS = ("HVS:host-keys:certify", "WLS:keys:request", "WLS:reports:create")
_CLIENT_KINDS = ("tls", "tls-client")


def principal_for_assertion(
    session: Session, token: str, *, root_ca: x509.Certificate, audience: str
) -> Principal:
    """The host a valid host assertion speaks for; :class:`Unauthorized` (with the check's code) otherwise."""
    try:
        assertion = verify_host_assertion(token, root_ca, audience=audience)
    except HostAssertionError as exc:
        raise Unauthorized(f"host assertion refused: {exc.message}", code=exc.code) from None
    fingerprint = pki.fingerprint_sha384(assertion.certificate)
    issued = session.scalar(
        select(IssuedCertificate).where(IssuedCertificate.fingerprint_sha384 == fingerprint)
    )
    if issued is None or issued.kind not in _CLIENT_KINDS or issued.not_after <= utcnow():
        raise Unauthorized(
            "the host certificate is not one this central issued for client authentication, or it expired: "
            "enroll the host again",
            code="host-certificate-unknown",
        )
    return Principal(HOST_PREFIX + assertion.host, (HOST_ROLE,), HOST_PERMISSIONS, assertion.token_id)


def asserted_host(principal: Principal) -> str | None:
    """The host name of a principal that signed in with a host assertion, or None for anyone else."""
    if principal.roles == (HOST_ROLE,) and principal.username.startswith(HOST_PREFIX):
        return principal.username.removeprefix(HOST_PREFIX)
    return None
