"""Certifying a host's TPM binding and signing keys (SecL's certify-host-binding-key / -signing-key).

A workload agent sends SecL's ``RegisterKeyInfo``: a key its TPM made, the TPM2_Certify statement of the
host's AIK about it, and the AIK's certificate. The Privacy CA certifies the key only when:

- the AIK certificate is one this Privacy CA issued (signature and validity), and issued to a registered
  host — and to the caller itself when the caller is a host (a host assertion): an AIK is tied to the host
  name its enrollment token was for, so a host cannot have keys certified under another host's AIK;
- the TPM's statement holds (:func:`secl.core.certifiedkey.verify_certified_key`: TPM-made, signed by that
  AIK, naming this public area, a non-migratable decrypt-only or sign-only RSA key of at least 2048 bits).

The certificate is stored with the host (one per usage; certifying again replaces it) and the host is
queued for a new report, whose attestation result then names the binding key.
"""

from __future__ import annotations

import logging

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.context import CentralServices
from secl.central.errors import Forbidden, Invalid, NotFound
from secl.central.privacyca.service import audit_refusal
from secl.central.reports import jobs
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_models import AIKChallenge
from secl.central.store.kbs_models import HostKeyCertificate
from secl.central.store.models import utcnow
from secl.core.attestation import certificate_sha384
from secl.core.certifiedkey import (
    CertifiedKeyError,
    KeyCertificationRequest,
    KeyUsage,
    build_certified_key_certificate,
    verify_certified_key,
)
from secl.core.errors import EvidenceError
from secl.core.tpm import load_ak_public

log = logging.getLogger("secl.central.hvs")


def certify_host_key(
    session: Session,
    services: CentralServices,
    request: KeyCertificationRequest,
    usage: KeyUsage,
    *,
    actor: str,
    caller_host: str | None,
) -> HostKeyCertificate:
    """Check a key-certification request and store the Privacy CA's certificate for the key's host."""
    action = f"host-key.{usage.value}-certify"
    aik_certificate = _aik_certificate(session, request.aik_certificate, action, actor)
    host = _aik_host(session, services, aik_certificate, action, actor)
    if caller_host is not None and caller_host != host.name:
        audit_refusal(
            session,
            Forbidden(
                f"this AIK certificate was issued to {host.name}, not to {caller_host}",
                code="aik-of-another-host",
            ),
            action,
            actor=actor,
            target=caller_host,
        )
    try:
        aik = load_ak_public(aik_certificate.public_bytes(Encoding.PEM))
        certified = verify_certified_key(request, usage, aik)
    except CertifiedKeyError as exc:
        audit_refusal(session, Invalid(exc.message, code=exc.code), action, actor=actor, target=host.name)
    except EvidenceError as exc:  # a structure that does not parse
        audit_refusal(
            session,
            Invalid(f"the request cannot be read: {exc.message}", code=exc.code),
            action,
            actor=actor,
            target=host.name,
        )
    privacy_ca = services.keys.privacy_ca.issuer
    certificate = build_certified_key_certificate(
        certified, privacy_ca.certificate, privacy_ca.key, days=services.config.certificate_days
    )
    der = certificate.public_bytes(Encoding.DER)
    row = host_key_certificate(session, host.id, usage)
    if row is None:
        row = HostKeyCertificate(host_id=host.id, usage=usage.value)
        session.add(row)
    row.der = der
    row.sha384 = certificate_sha384(der)
    row.key_name = certified.name.hex()
    row.aik_certificate_sha384 = certificate_sha384(aik_certificate.public_bytes(Encoding.DER))
    row.not_after = certificate.not_valid_after_utc
    row.created_at = utcnow()
    row.created_by = actor
    audit.record(
        session,
        f"host-key.{usage.value}-certified",
        actor=actor,
        outcome="success",
        target=host.name,
        sha384=row.sha384,
        key_name=row.key_name,
    )
    session.flush()
    if usage is KeyUsage.BINDING:
        # The host's next attestation result must name this key before a key broker releases keys to it.
        jobs.enqueue(session, [host.id], actor=actor, reason="binding-key")
    session.commit()
    log.info("certified the %s key %s of host %s", usage.value, row.key_name, host.name)
    return row


def host_key_certificate(session: Session, host_id: str, usage: KeyUsage) -> HostKeyCertificate | None:
    return session.scalar(
        select(HostKeyCertificate).where(
            HostKeyCertificate.host_id == host_id, HostKeyCertificate.usage == usage.value
        )
    )


def _aik_certificate(session: Session, der: bytes, action: str, actor: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        audit_refusal(
            session,
            Invalid("aik_der_certificate is not a DER X.509 certificate", code="aik-certificate-malformed"),
            action,
            actor=actor,
            target="",
        )


def _aik_host(
    session: Session, services: CentralServices, certificate: x509.Certificate, action: str, actor: str
) -> Host:
    """The registered host this Privacy CA issued the AIK certificate to."""
    privacy_ca = services.keys.privacy_ca.issuer.certificate
    try:
        certificate.verify_directly_issued_by(privacy_ca)
    except (InvalidSignature, ValueError, TypeError):
        audit_refusal(
            session,
            Forbidden(
                "the AIK certificate was not issued by this central's Privacy CA", code="aik-not-certified"
            ),
            action,
            actor=actor,
            target="",
        )
    now = utcnow()
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        audit_refusal(
            session,
            Forbidden(
                "the AIK certificate is not valid now: enroll the AIK again", code="aik-certificate-expired"
            ),
            action,
            actor=actor,
            target="",
        )
    serial = format(certificate.serial_number, "x")
    host_name = session.scalar(
        select(AIKChallenge.host_name).where(AIKChallenge.certificate_serial == serial)
    )
    if host_name is None:
        audit_refusal(
            session,
            Forbidden(
                "this Privacy CA has no record of issuing that AIK certificate", code="aik-not-certified"
            ),
            action,
            actor=actor,
            target="",
        )
    host = session.scalar(select(Host).where(Host.name == host_name))
    if host is None:
        audit_refusal(
            session,
            NotFound(
                f"the AIK was issued to {host_name}, which is not a registered host", code="host-not-found"
            ),
            action,
            actor=actor,
            target=host_name,
        )
    return host
