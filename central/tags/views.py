"""/hvs/v2/tag-certificates, /hvs/v2/rpc/deploy-tag-certificate and /hvs/v2/rpc/clear-tag: asset tags for
hosts (see :mod:`secl.central.tags.service`).

``POST /tag-certificates {hardware_uuid, selection_content: [{name, value}], validity_days}`` issues SecL's
tag certificate; search, get, revoke (``POST /tag-certificates/{id}/revoke``) and delete follow. Deploying
(``POST /rpc/deploy-tag-certificate {certificate_id, host_id?}``) answers the verdict and tags of the report
made right after, or why attesting failed (the tag and the flavor stay deployed).
"""

from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint

from secl.central.endpoints import current_principal, db, endpoint, services
from secl.central.store.hvs_tag_models import TagCertificateRecord
from secl.central.tags import service, store
from secl.central.tags.schemas import (
    ClearTag,
    ClearTagOut,
    DeployOut,
    DeployTagCertificate,
    TagCertificateCollection,
    TagCertificateCreate,
    TagCertificateOut,
    TagCertificateSearch,
    TagOut,
)

bp = Blueprint("tags", __name__, url_prefix="/hvs/v2")


def _out(record: TagCertificateRecord) -> TagCertificateOut:
    return TagCertificateOut(
        id=record.id,
        hardware_uuid=record.hardware_uuid,
        subject=record.subject,
        issuer=record.issuer,
        serial_number=record.serial_number,
        not_before=record.not_before,
        not_after=record.not_after,
        selection_content=[TagOut(**t) for t in record.tags],
        sha384=record.sha384,
        certificate=base64.b64encode(record.der).decode(),
        revoked=record.revoked,
        revoked_at=record.revoked_at,
        revoked_by=record.revoked_by,
        created_at=record.created_at,
        created_by=record.created_by,
    )


def _attestation_error(attested: service.Attested) -> dict[str, Any] | None:
    error = attested.error
    return {"code": error.code, "message": error.message} if error is not None else None


@endpoint(
    bp,
    "/tag-certificates",
    "POST",
    permission="HVS:tag-certificates:create",
    body=TagCertificateCreate,
    response=TagCertificateOut,
    status=201,
    summary="Issue a tag certificate (SecL's format, signed by the central's Tag CA) for a host's "
    "hardware UUID and a selection of name/value tags",
)
def create_tag_certificate(body: TagCertificateCreate) -> TagCertificateOut:
    record = service.create_certificate(
        db(),
        services(),
        hardware_uuid=body.hardware_uuid,
        selection_content=[t.model_dump() for t in body.selection_content],
        validity_days=body.validity_days,
        actor=current_principal().username,
    )
    return _out(record)


@endpoint(
    bp,
    "/tag-certificates",
    "GET",
    permission="HVS:tag-certificates:search",
    query=TagCertificateSearch,
    response=TagCertificateCollection,
    summary="Search tag certificates, newest first (id, hardwareUuid, subjectEqualTo, subjectContains, "
    "validOn, revoked, limit)",
)
def search_tag_certificates(query: TagCertificateSearch) -> TagCertificateCollection:
    found = store.search(
        db(),
        certificate_id=query.id,
        hardware_uuid=query.hardwareUuid,
        subject_equal_to=query.subjectEqualTo,
        subject_contains=query.subjectContains,
        valid_on=query.validOn,
        revoked=query.revoked,
        limit=query.limit,
    )
    return TagCertificateCollection(tag_certificates=[_out(r) for r in found])


@endpoint(
    bp,
    "/tag-certificates/<certificate_id>",
    "GET",
    permission="HVS:tag-certificates:retrieve",
    response=TagCertificateOut,
    summary="One tag certificate",
)
def retrieve_tag_certificate(certificate_id: str) -> TagCertificateOut:
    return _out(store.get(db(), certificate_id))


@endpoint(
    bp,
    "/tag-certificates/<certificate_id>/revoke",
    "POST",
    permission="HVS:tag-certificates:revoke",
    response=TagCertificateOut,
    summary="Revoke a tag certificate: the next report of a host carrying it fails TagCertificateTrusted "
    "with TagCertificateRevoked (the host is queued for a new report)",
)
def revoke_tag_certificate(certificate_id: str) -> TagCertificateOut:
    return _out(service.revoke_certificate(db(), certificate_id, actor=current_principal().username))


@endpoint(
    bp,
    "/tag-certificates/<certificate_id>",
    "DELETE",
    permission="HVS:tag-certificates:delete",
    summary="Delete a tag certificate and the ASSET_TAG flavors holding it: a host that still carries "
    "it has a tag no flavor vouches for (RequiredFlavorTypeMissing for ASSET_TAG)",
)
def delete_tag_certificate(certificate_id: str) -> None:
    service.delete_certificate(db(), certificate_id, actor=current_principal().username)


@endpoint(
    bp,
    "/rpc/deploy-tag-certificate",
    "POST",
    permission="HVS:tag-certificates:deploy",
    body=DeployTagCertificate,
    response=DeployOut,
    summary="Deploy a tag certificate: its host's trust agent writes its SHA-384 into TPM NV 0x01C10110, "
    "the host's ASSET_TAG flavor is made, signed and stored, and the host is attested",
)
def deploy_tag_certificate(body: DeployTagCertificate) -> DeployOut:
    deployed = service.deploy(
        db(), services(), body.certificate_id, body.host_id, actor=current_principal().username
    )
    report = deployed.attested.report
    return DeployOut(
        certificate_id=deployed.record.id,
        host_id=deployed.host.id,
        host_name=deployed.host.name,
        hardware_uuid=deployed.hardware_uuid,
        flavor_id=deployed.flavor_id,
        replaced_flavor_ids=deployed.replaced_flavor_ids,
        report_id=report.id if report else None,
        trusted=report.trusted if report else None,
        tags=dict(report.tags or {}) if report else {},
        attestation_error=_attestation_error(deployed.attested),
    )


@endpoint(
    bp,
    "/rpc/clear-tag",
    "POST",
    permission="HVS:tag-certificates:deploy",
    body=ClearTag,
    response=ClearTagOut,
    summary="Remove a host's asset tag: its trust agent writes zeros into TPM NV 0x01C10110 (no tag), "
    "the host's ASSET_TAG flavors are deleted, and the host is attested",
)
def clear_tag(body: ClearTag) -> ClearTagOut:
    cleared = service.clear(db(), services(), body.host_id, actor=current_principal().username)
    report = cleared.attested.report
    return ClearTagOut(
        host_id=cleared.host.id,
        host_name=cleared.host.name,
        hardware_uuid=cleared.hardware_uuid,
        removed_flavor_ids=cleared.removed_flavor_ids,
        report_id=report.id if report else None,
        trusted=report.trusted if report else None,
        attestation_error=_attestation_error(cleared.attested),
    )
