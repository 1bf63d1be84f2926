"""/hvs/v2/tpm-endorsements: EK certificates registered by an operator (SecL's TPM endorsements).

The Privacy CA accepts an EK whose certificate chains to a trusted TPM vendor CA (``/endorsement-cas``).
Registering an EK certificate here is the other way in, one TPM at a time: a registered, unrevoked EK is
accepted without a chain (a TPM whose vendor publishes no CA, a lab simulator), and with the central's
``require_ek_registration`` setting *only* registered EKs are accepted, chain or not, so no TPM enrolls
that an operator did not list. Revoking a registration refuses that EK even when its chain is good.

Registrations are keyed by the certificate's SHA-256 (after the tolerant loader's NV-header stripping and
trailing-byte trimming, exactly as the Privacy CA computes it for an incoming EK certificate).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field
from secl.central import audit
from secl.central.endpoints import current_principal, endpoint
from secl.central.errors import Conflict, NotFound, ValidationFailed
from secl.central.hvs.privacyca import der_to_pem, registered_ek
from secl.central.hvs.schemas import Strict
from secl.central.hvs.store_schemas import UUIDStr
from secl.central.hvs.views import bp
from secl.central.store.db import db
from secl.central.store.hvs_models import TpmEndorsement
from secl.central.store.models import utcnow
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.core.ekcert import LoadedCertificate, load_ek_certificate
from secl.core.errors import EKCertificateError

_MAX_CERTIFICATE = 64 * 1024
Comment = Annotated[str, Field(max_length=1024)]


class TpmEndorsementCreate(Strict):
    # One EK certificate: PEM, or base64 of its DER as read from the TPM's NV (an NV header is stripped).
    certificate: Annotated[str, Field(min_length=1, max_length=_MAX_CERTIFICATE)]
    hardware_uuid: UUIDStr | None = None
    comment: Comment = ""
    revoked: bool = False


class TpmEndorsementUpdate(Strict):
    hardware_uuid: UUIDStr | None = None
    comment: Comment | None = None
    revoked: bool | None = None


class TpmEndorsementSearch(Strict):
    hardwareUuidEqualTo: UUIDStr | None = None
    issuerContains: Annotated[str, Field(max_length=1024)] | None = None
    commentContains: Comment | None = None
    revokedEqualTo: bool | None = None


class TpmEndorsementOut(BaseModel):
    id: str
    hardware_uuid: str | None
    issuer: str
    subject: str
    certificate_sha256: str
    revoked: bool
    comment: str
    certificate: str  # PEM
    created_at: datetime
    created_by: str
    updated_at: datetime


class TpmEndorsementCollection(BaseModel):
    tpm_endorsements: list[TpmEndorsementOut]


# --- the routes -------------------------------------------------------------------------------------------


def _load(text: str) -> LoadedCertificate:
    data: bytes
    if "-----BEGIN" in text:
        data = text.encode("ascii", errors="replace")
    else:
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed(
                "certificate must be a PEM certificate or base64 of a DER certificate",
                code="certificate-invalid",
            ) from None
    try:
        cert = load_ek_certificate(data)
    except EKCertificateError as exc:
        raise ValidationFailed(
            f"the certificate cannot be loaded: {exc.message}", code="certificate-invalid",
            details={"ekcert_code": exc.code},
        ) from None  # fmt: skip
    if cert.is_ca is True:
        raise ValidationFailed(
            f"{cert.label} is a CA certificate: register an EK certificate here, or trust a vendor CA with "
            "POST /hvs/v2/endorsement-cas", code="not-an-ek-certificate",
        )  # fmt: skip
    return cert


def _out(row: TpmEndorsement) -> TpmEndorsementOut:
    return TpmEndorsementOut(
        id=row.id, hardware_uuid=row.hardware_uuid, issuer=row.issuer, subject=row.subject,
        certificate_sha256=row.certificate_sha256, revoked=row.revoked, comment=row.comment,
        certificate=row.pem, created_at=row.created_at, created_by=row.created_by, updated_at=row.updated_at,
    )  # fmt: skip


def _get(session: Session, endorsement_id: str) -> TpmEndorsement:
    row = session.get(TpmEndorsement, endorsement_id)
    if row is None:
        raise NotFound(f"no TPM endorsement with id {endorsement_id}", code="tpm-endorsement-not-found")
    return row


@endpoint(bp, "/tpm-endorsements", "POST", permission="HVS:tpm-endorsements:create",
          body=TpmEndorsementCreate, response=TpmEndorsementOut, status=201,
          summary="Register one TPM's EK certificate: the Privacy CA accepts that EK without a vendor CA "
                  "chain (and, with require_ek_registration, only registered EKs)")  # fmt: skip
def create_tpm_endorsement(body: TpmEndorsementCreate) -> TpmEndorsementOut:
    session, actor = db(), current_principal().username
    cert = _load(body.certificate)
    existing = registered_ek(session, cert.fingerprint_sha256)
    if existing is not None:
        raise Conflict(
            f"{cert.label} is already registered (id {existing.id})", code="tpm-endorsement-exists"
        )
    row = TpmEndorsement(
        certificate_sha256=cert.fingerprint_sha256, hardware_uuid=body.hardware_uuid, issuer=str(cert.issuer)[:1024],
        subject=str(cert.subject)[:1024], pem=der_to_pem(cert.der), revoked=body.revoked, comment=body.comment,
        created_by=actor,
    )  # fmt: skip
    session.add(row)
    audit.record(session, "tpm-endorsement.registered", actor=actor, outcome="success",
                 target=str(cert.subject)[:255], certificate_sha256=cert.fingerprint_sha256,
                 hardware_uuid=body.hardware_uuid, revoked=body.revoked)  # fmt: skip
    try:
        session.commit()
    except IntegrityError:  # registered by another request meanwhile
        session.rollback()
        raise Conflict(f"{cert.label} is already registered", code="tpm-endorsement-exists") from None
    return _out(row)


@endpoint(bp, "/tpm-endorsements", "GET", permission="HVS:tpm-endorsements:search",
          query=TpmEndorsementSearch, response=TpmEndorsementCollection,
          summary="Search registered EK certificates (hardwareUuidEqualTo, issuerContains, commentContains, "
                  "revokedEqualTo)")  # fmt: skip
def search_tpm_endorsements(query: TpmEndorsementSearch) -> TpmEndorsementCollection:
    statement = select(TpmEndorsement).order_by(TpmEndorsement.created_at, TpmEndorsement.id)
    if query.hardwareUuidEqualTo is not None:
        statement = statement.where(TpmEndorsement.hardware_uuid == query.hardwareUuidEqualTo)
    if query.issuerContains is not None:
        statement = statement.where(TpmEndorsement.issuer.contains(query.issuerContains, autoescape=True))
    if query.commentContains is not None:
        statement = statement.where(TpmEndorsement.comment.contains(query.commentContains, autoescape=True))
    if query.revokedEqualTo is not None:
        statement = statement.where(TpmEndorsement.revoked == query.revokedEqualTo)
    return TpmEndorsementCollection(tpm_endorsements=[_out(row) for row in db().scalars(statement)])


@endpoint(bp, "/tpm-endorsements/<endorsement_id>", "GET", permission="HVS:tpm-endorsements:retrieve",
          response=TpmEndorsementOut, summary="One registered EK certificate")  # fmt: skip
def retrieve_tpm_endorsement(endorsement_id: str) -> TpmEndorsementOut:
    return _out(_get(db(), endorsement_id))


@endpoint(bp, "/tpm-endorsements/<endorsement_id>", "PUT", permission="HVS:tpm-endorsements:update",
          body=TpmEndorsementUpdate, response=TpmEndorsementOut,
          summary="Revoke or restore a registration, or change its hardware UUID or comment")  # fmt: skip
def update_tpm_endorsement(endorsement_id: str, body: TpmEndorsementUpdate) -> TpmEndorsementOut:
    session, actor = db(), current_principal().username
    row = _get(session, endorsement_id)
    changes = body.model_dump(exclude_unset=True)
    for key, value in changes.items():
        if value is not None or key == "hardware_uuid":
            setattr(row, key, value)
    row.updated_at = utcnow()
    audit.record(session, "tpm-endorsement.updated", actor=actor, outcome="success", target=row.subject[:255],
                 certificate_sha256=row.certificate_sha256, changes=changes)  # fmt: skip
    session.commit()
    return _out(row)


@endpoint(bp, "/tpm-endorsements/<endorsement_id>", "DELETE", permission="HVS:tpm-endorsements:delete",
          summary="Forget a registered EK certificate")  # fmt: skip
def delete_tpm_endorsement(endorsement_id: str) -> None:
    session, actor = db(), current_principal().username
    row = _get(session, endorsement_id)
    session.delete(row)
    audit.record(session, "tpm-endorsement.deleted", actor=actor, outcome="success", target=row.subject[:255],
                 certificate_sha256=row.certificate_sha256)  # fmt: skip
    session.commit()
