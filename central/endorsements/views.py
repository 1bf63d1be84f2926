"""/hvs/v2/endorsement-cas and /hvs/v2/tpm-endorsements: the TPM vendor CAs and the registered EK
certificates the Privacy CA accepts (see :mod:`secl.central.endorsements.service`)."""

from __future__ import annotations

from flask import Blueprint

from secl.central.endorsements import service
from secl.central.endorsements.schemas import (
    EndorsementCACreate,
    EndorsementCAOut,
    TpmEndorsementCollection,
    TpmEndorsementCreate,
    TpmEndorsementOut,
    TpmEndorsementSearch,
    TpmEndorsementUpdate,
)
from secl.central.endpoints import current_principal, db, endpoint, services
from secl.central.store.hvs_models import TpmEndorsement

bp = Blueprint("endorsements", __name__, url_prefix="/hvs/v2")


# --- endorsement CAs --------------------------------------------------------------------------------------


def _ca_out(ca: service.TrustedCA) -> EndorsementCAOut:
    cert, row = ca.certificate, ca.row
    return EndorsementCAOut(
        id=row.id if row else None,
        source="database" if row else "file",
        subject=str(cert.subject),
        issuer=str(cert.issuer),
        fingerprint_sha256=cert.fingerprint_sha256,
        not_before=cert.not_before,
        not_after=cert.not_after,
        created_at=row.created_at if row else None,
        created_by=row.created_by if row else None,
        pem=service.der_to_pem(cert.der),
    )


@endpoint(
    bp,
    "/endorsement-cas",
    "POST",
    permission="HVS:endorsement-cas:create",
    body=EndorsementCACreate,
    response=EndorsementCAOut,
    status=201,
    summary="Trust a TPM vendor's EK CA certificate (PEM) for EK certificate validation",
)
def create_endorsement_ca(body: EndorsementCACreate) -> EndorsementCAOut:
    return _ca_out(
        service.add_endorsement_ca(db(), services(), body.certificate, actor=current_principal().username)
    )


@endpoint(
    bp,
    "/endorsement-cas",
    "GET",
    permission="HVS:endorsement-cas:search",
    response=list[EndorsementCAOut],
    summary="The trusted EK CAs: those in the database, then those of keys/endorsement-cas.pem",
)
def search_endorsement_cas() -> list[EndorsementCAOut]:
    return [_ca_out(ca) for ca in service.trusted_cas(db(), services())]


@endpoint(
    bp,
    "/endorsement-cas/<ca_id>",
    "DELETE",
    permission="HVS:endorsement-cas:delete",
    summary="Stop trusting an EK CA held in the database (the bundle file is edited by hand)",
)
def delete_endorsement_ca(ca_id: str) -> None:
    service.delete_endorsement_ca(db(), ca_id, actor=current_principal().username)


# --- registered EK certificates ---------------------------------------------------------------------------


def _out(row: TpmEndorsement) -> TpmEndorsementOut:
    return TpmEndorsementOut(
        id=row.id,
        hardware_uuid=row.hardware_uuid,
        issuer=row.issuer,
        subject=row.subject,
        certificate_sha256=row.certificate_sha256,
        revoked=row.revoked,
        comment=row.comment,
        certificate=row.pem,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
    )


@endpoint(
    bp,
    "/tpm-endorsements",
    "POST",
    permission="HVS:tpm-endorsements:create",
    body=TpmEndorsementCreate,
    response=TpmEndorsementOut,
    status=201,
    summary="Register one TPM's EK certificate: the Privacy CA accepts that EK without a vendor CA "
    "chain (and, with require_ek_registration, only registered EKs)",
)
def create_tpm_endorsement(body: TpmEndorsementCreate) -> TpmEndorsementOut:
    row = service.register(
        db(),
        body.certificate,
        hardware_uuid=body.hardware_uuid,
        comment=body.comment,
        revoked=body.revoked,
        actor=current_principal().username,
    )
    return _out(row)


@endpoint(
    bp,
    "/tpm-endorsements",
    "GET",
    permission="HVS:tpm-endorsements:search",
    query=TpmEndorsementSearch,
    response=TpmEndorsementCollection,
    summary="Search registered EK certificates (hardwareUuidEqualTo, issuerContains, commentContains, "
    "revokedEqualTo)",
)
def search_tpm_endorsements(query: TpmEndorsementSearch) -> TpmEndorsementCollection:
    found = service.search_endorsements(
        db(),
        hardware_uuid=query.hardwareUuidEqualTo,
        issuer_contains=query.issuerContains,
        comment_contains=query.commentContains,
        revoked=query.revokedEqualTo,
    )
    return TpmEndorsementCollection(tpm_endorsements=[_out(row) for row in found])


@endpoint(
    bp,
    "/tpm-endorsements/<endorsement_id>",
    "GET",
    permission="HVS:tpm-endorsements:retrieve",
    response=TpmEndorsementOut,
    summary="One registered EK certificate",
)
def retrieve_tpm_endorsement(endorsement_id: str) -> TpmEndorsementOut:
    return _out(service.get_endorsement(db(), endorsement_id))


@endpoint(
    bp,
    "/tpm-endorsements/<endorsement_id>",
    "PUT",
    permission="HVS:tpm-endorsements:update",
    body=TpmEndorsementUpdate,
    response=TpmEndorsementOut,
    summary="Revoke or restore a registration, or change its hardware UUID or comment",
)
def update_tpm_endorsement(endorsement_id: str, body: TpmEndorsementUpdate) -> TpmEndorsementOut:
    changes = body.model_dump(exclude_unset=True)
    return _out(service.update_endorsement(db(), endorsement_id, changes, actor=current_principal().username))


@endpoint(
    bp,
    "/tpm-endorsements/<endorsement_id>",
    "DELETE",
    permission="HVS:tpm-endorsements:delete",
    summary="Forget a registered EK certificate",
)
def delete_tpm_endorsement(endorsement_id: str) -> None:
    service.delete_endorsement(db(), endorsement_id, actor=current_principal().username)
