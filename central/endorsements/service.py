"""The endorsement trust store: the TPM vendor CAs an EK certificate may chain to, and EK certificates an
operator registered one TPM at a time (SecL's TPM endorsements).

Trusted EK CAs come from the database (``/hvs/v2/endorsement-cas``, shared by every central instance) and
from the bundle file ``keys/endorsement-cas.pem``, which operators edit in place and which is re-read when it
changes. The Privacy CA accepts an EK whose certificate chains to one of them.

Registering an EK certificate (``/hvs/v2/tpm-endorsements``) is the other way in: a registered, unrevoked EK
is accepted without a chain (a TPM whose vendor publishes no CA, a lab simulator), and with the central's
``require_ek_registration`` setting *only* registered EKs are accepted, chain or not, so no TPM enrolls that
an operator did not list. Revoking a registration refuses that EK even when its chain is good.
Registrations are keyed by the certificate's SHA-256 (after the tolerant loader's NV-header stripping and
trailing-byte trimming, exactly as the Privacy CA computes it for an incoming EK certificate).
"""

from __future__ import annotations

import base64
import binascii
import logging
import textwrap
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.context import CentralServices
from secl.central.errors import Conflict, Invalid, NotFound
from secl.central.store.hvs_models import EndorsementCA, TpmEndorsement
from secl.central.store.models import utcnow
from secl.core.ekcert import LoadedCertificate, load_certificates, load_ek_certificate
from secl.core.errors import EKCertificateError

log = logging.getLogger("secl.central.hvs")


@dataclass(frozen=True)
class TrustedCA:
    certificate: LoadedCertificate
    row: EndorsementCA | None  # None: from the PEM bundle file


def der_to_pem(der: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


# --- trusted EK CAs ---------------------------------------------------------------------------------------


def _file_cas(services: CentralServices) -> tuple[LoadedCertificate, ...]:
    """The bundle ``keys/endorsement-cas.pem``, re-read when it changes (operators edit it in place)."""
    path = services.files.endorsement_cas
    try:
        stat = path.stat()
    except FileNotFoundError:
        return ()
    key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    memo = services.memos.endorsement_bundle
    cached = memo.get(key)
    if cached is not None:
        return cached
    data = path.read_bytes()
    try:
        certs = load_certificates(data) if data.strip() else ()
    except EKCertificateError as exc:
        # The operator's file is broken: say so in the log and keep working with the database's CAs only.
        log.error("%s is not usable and is ignored: %s", path, exc.message)
        certs = ()
    return memo.put(key, certs)


def _parsed(services: CentralServices, row: EndorsementCA) -> LoadedCertificate:
    cache = services.memos.endorsement_cas
    cert = cache.get(row.pem)
    if cert is None:
        cert = cache[row.pem] = load_ek_certificate(row.pem.encode())
    return cert


def trusted_cas(session: Session, services: CentralServices) -> list[TrustedCA]:
    """Every trusted EK CA: the database's (shared by all instances) and the bundle file's."""
    rows = session.scalars(select(EndorsementCA).order_by(EndorsementCA.created_at)).all()
    found = [TrustedCA(_parsed(services, row), row) for row in rows]
    return found + [TrustedCA(cert, None) for cert in _file_cas(services)]


def add_endorsement_ca(session: Session, services: CentralServices, text: str, *, actor: str) -> TrustedCA:
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise Invalid("certificate must be one PEM certificate", code="certificate-invalid")
    try:
        cert = load_ek_certificate(text.encode())
    except EKCertificateError as exc:
        raise Invalid(
            f"the certificate cannot be loaded: {exc.message}",
            code="certificate-invalid",
            details={"ekcert_code": exc.code},
        ) from None
    if cert.is_ca is not True:
        # An end-entity certificate as an anchor would make exactly that EK trusted without any chain.
        raise Invalid(
            f"{cert.label} is not a CA certificate (basicConstraints cA is not TRUE)", code="not-a-ca"
        )
    existing = session.scalar(
        select(EndorsementCA).where(EndorsementCA.fingerprint_sha256 == cert.fingerprint_sha256)
    )
    if existing is not None:
        raise Conflict(f"{cert.label} is already trusted (id {existing.id})", code="endorsement-ca-exists")
    row = EndorsementCA(
        fingerprint_sha256=cert.fingerprint_sha256,
        subject=str(cert.subject)[:1024],
        not_after=cert.not_after,
        pem=der_to_pem(cert.der),
        created_by=actor,
    )
    session.add(row)
    audit.record(
        session,
        "endorsement-ca.added",
        actor=actor,
        outcome="success",
        target=str(cert.subject)[:255],
        fingerprint_sha256=cert.fingerprint_sha256,
    )
    try:
        session.commit()
    except IntegrityError:  # another request added it meanwhile
        session.rollback()
        raise Conflict(f"{cert.label} is already trusted", code="endorsement-ca-exists") from None
    return TrustedCA(_parsed(services, row), row)


def delete_endorsement_ca(session: Session, ca_id: str, *, actor: str) -> None:
    row = session.get(EndorsementCA, ca_id)
    if row is None:
        raise NotFound(f"no endorsement CA with id {ca_id} in the database", code="endorsement-ca-not-found")
    session.delete(row)
    audit.record(
        session,
        "endorsement-ca.deleted",
        actor=actor,
        outcome="success",
        target=row.subject[:255],
        fingerprint_sha256=row.fingerprint_sha256,
    )
    session.commit()


# --- registered EK certificates ---------------------------------------------------------------------------


def registered_ek(session: Session, certificate_sha256: str) -> TpmEndorsement | None:
    """The registration (/hvs/v2/tpm-endorsements) of the EK certificate with this SHA-256, revoked or
    not; None when it is not registered."""
    return session.scalar(
        select(TpmEndorsement).where(TpmEndorsement.certificate_sha256 == certificate_sha256)
    )


def load_registered_certificate(text: str) -> LoadedCertificate:
    """One EK certificate to register: PEM, or base64 of its DER as read from the TPM's NV."""
    data: bytes
    if "-----BEGIN" in text:
        data = text.encode("ascii", errors="replace")
    else:
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(
                "certificate must be a PEM certificate or base64 of a DER certificate",
                code="certificate-invalid",
            ) from None
    try:
        cert = load_ek_certificate(data)
    except EKCertificateError as exc:
        raise Invalid(
            f"the certificate cannot be loaded: {exc.message}",
            code="certificate-invalid",
            details={"ekcert_code": exc.code},
        ) from None
    if cert.is_ca is True:
        raise Invalid(
            f"{cert.label} is a CA certificate: register an EK certificate here, or trust a vendor CA with "
            "POST /hvs/v2/endorsement-cas",
            code="not-an-ek-certificate",
        )
    return cert


def get_endorsement(session: Session, endorsement_id: str) -> TpmEndorsement:
    row = session.get(TpmEndorsement, endorsement_id)
    if row is None:
        raise NotFound(f"no TPM endorsement with id {endorsement_id}", code="tpm-endorsement-not-found")
    return row


def register(
    session: Session,
    certificate: str,
    *,
    hardware_uuid: str | None,
    comment: str,
    revoked: bool,
    actor: str,
) -> TpmEndorsement:
    cert = load_registered_certificate(certificate)
    existing = registered_ek(session, cert.fingerprint_sha256)
    if existing is not None:
        raise Conflict(
            f"{cert.label} is already registered (id {existing.id})", code="tpm-endorsement-exists"
        )
    row = TpmEndorsement(
        certificate_sha256=cert.fingerprint_sha256,
        hardware_uuid=hardware_uuid,
        issuer=str(cert.issuer)[:1024],
        subject=str(cert.subject)[:1024],
        pem=der_to_pem(cert.der),
        revoked=revoked,
        comment=comment,
        created_by=actor,
    )
    session.add(row)
    audit.record(
        session,
        "tpm-endorsement.registered",
        actor=actor,
        outcome="success",
        target=str(cert.subject)[:255],
        certificate_sha256=cert.fingerprint_sha256,
        hardware_uuid=hardware_uuid,
        revoked=revoked,
    )
    try:
        session.commit()
    except IntegrityError:  # registered by another request meanwhile
        session.rollback()
        raise Conflict(f"{cert.label} is already registered", code="tpm-endorsement-exists") from None
    return row


def search_endorsements(
    session: Session,
    *,
    hardware_uuid: str | None,
    issuer_contains: str | None,
    comment_contains: str | None,
    revoked: bool | None,
) -> list[TpmEndorsement]:
    statement = select(TpmEndorsement).order_by(TpmEndorsement.created_at, TpmEndorsement.id)
    if hardware_uuid is not None:
        statement = statement.where(TpmEndorsement.hardware_uuid == hardware_uuid)
    if issuer_contains is not None:
        statement = statement.where(TpmEndorsement.issuer.contains(issuer_contains, autoescape=True))
    if comment_contains is not None:
        statement = statement.where(TpmEndorsement.comment.contains(comment_contains, autoescape=True))
    if revoked is not None:
        statement = statement.where(TpmEndorsement.revoked == revoked)
    return list(session.scalars(statement))


def update_endorsement(
    session: Session, endorsement_id: str, changes: dict[str, Any], *, actor: str
) -> TpmEndorsement:
    """Apply the members given (``hardware_uuid`` may be set to null; the others only to a value)."""
    row = get_endorsement(session, endorsement_id)
    for key, value in changes.items():
        if value is not None or key == "hardware_uuid":
            setattr(row, key, value)
    row.updated_at = utcnow()
    audit.record(
        session,
        "tpm-endorsement.updated",
        actor=actor,
        outcome="success",
        target=row.subject[:255],
        certificate_sha256=row.certificate_sha256,
        changes=changes,
    )
    session.commit()
    return row


def delete_endorsement(session: Session, endorsement_id: str, *, actor: str) -> None:
    row = get_endorsement(session, endorsement_id)
    session.delete(row)
    audit.record(
        session,
        "tpm-endorsement.deleted",
        actor=actor,
        outcome="success",
        target=row.subject[:255],
        certificate_sha256=row.certificate_sha256,
    )
    session.commit()
