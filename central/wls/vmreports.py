"""VM trust reports: SecL's instance trust report as a host's workload agent files it, signed by the
host's TPM signing key (SecL's ``crypt.SignedData``: ``data`` is the report's JSON, ``hash_alg`` its hash,
``signature`` TPM2_Sign's RSASSA-PKCS1-v1_5 signature over it).

The signed ``data`` is what counts: it must verify under the signing-key certificate this central's Privacy
CA issued to the host the report names, and the unsigned copy of its fields beside it (SecL sends both)
must say the same. A host may file reports only about itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.errors import Forbidden, Invalid, NotFound, ServiceError
from secl.central.privacyca.hostkeys import host_key_certificate
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.wls_models import VmReport
from secl.core.certifiedkey import KeyUsage

_HASHES: dict[str, hashes.HashAlgorithm] = {
    "SHA-256": hashes.SHA256(),
    "SHA256": hashes.SHA256(),
    "SHA-384": hashes.SHA384(),
    "SHA384": hashes.SHA384(),
}
_REPORT_FIELDS = ("instance_manifest", "policy_name", "results", "trusted")


@dataclass(frozen=True)
class SignedReport:
    data: bytes
    hash_alg: str
    signature: bytes
    unsigned: dict[str, Any]  # the report's fields sent beside the signed data


def create_report(session: Session, report: SignedReport, *, caller_host: str | None, actor: str) -> VmReport:
    content = _signed_content(report)
    info = content["instance_manifest"]["instance_info"]
    hardware_uuid = str(info["host_hardware_uuid"]).lower()
    host = session.scalar(select(Host).where(func.lower(Host.hardware_uuid) == hardware_uuid))
    if caller_host is not None and (host is None or host.name != caller_host):
        _refuse(
            session,
            Forbidden(f"host {caller_host} may file reports only about itself", code="host-mismatch"),
            actor=actor,
            target=hardware_uuid,
        )
    if host is None:
        raise NotFound(f"no host with hardware UUID {hardware_uuid}", code="host-not-found")
    certificate = host_key_certificate(session, host.id, KeyUsage.SIGNING)
    if certificate is None:
        _refuse(
            session,
            Forbidden(f"host {host.name} has no certified signing key", code="signing-key-not-certified"),
            actor=actor,
            target=host.name,
        )
    public_key = x509.load_der_x509_certificate(certificate.der).public_key()
    try:
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise InvalidSignature
        public_key.verify(report.signature, report.data, padding.PKCS1v15(), _HASHES[report.hash_alg])
    except InvalidSignature:
        _refuse(
            session,
            Forbidden(
                "the report's signature does not verify under the host's certified signing key",
                code="report-signature-invalid",
            ),
            actor=actor,
            target=host.name,
        )
    row = VmReport(
        host_id=host.id,
        instance_id=str(info["instance_id"]),
        hardware_uuid=hardware_uuid,
        image_id=str(info.get("image_id", "")),
        trusted=bool(content["trusted"]),
        document={
            **content,
            "data": base64.b64encode(report.data).decode(),
            "hash_alg": report.hash_alg,
            "signature": base64.b64encode(report.signature).decode(),
        },
        created_by=actor,
    )
    session.add(row)
    audit.record(
        session, "wls.report-created", actor=actor, outcome="success", target=row.instance_id, host=host.name,
        trusted=row.trusted,
    )  # fmt: skip
    session.commit()
    return row


def _signed_content(report: SignedReport) -> dict[str, Any]:
    if report.hash_alg not in _HASHES:
        raise Invalid(f"hash_alg {report.hash_alg!r} is not one of SHA-256, SHA-384", code="report-malformed")
    try:
        content = json.loads(report.data)
        info = content["instance_manifest"]["instance_info"]
        for field in ("instance_id", "host_hardware_uuid"):
            if not isinstance(info[field], str) or not 0 < len(info[field]) <= 64:
                raise ValueError(field)
        if not isinstance(info.get("image_id", ""), str) or len(info.get("image_id", "")) > 64:
            raise ValueError("image_id")
        if not isinstance(content["trusted"], bool) or not isinstance(content.get("results", []), list):
            raise ValueError("trusted")
    except (ValueError, KeyError, TypeError, RecursionError):
        raise Invalid(
            "data is not SecL's instance trust report (instance_manifest.instance_info with instance_id and "
            "host_hardware_uuid, trusted)",
            code="report-malformed",
        ) from None
    for field in _REPORT_FIELDS:
        if field in report.unsigned and report.unsigned[field] != content.get(field):
            raise Invalid(f"{field} differs from the signed data", code="report-data-mismatch")
    return {field: content.get(field) for field in _REPORT_FIELDS}


def _refuse(session: Session, error: ServiceError, *, actor: str, target: str) -> NoReturn:
    session.rollback()
    audit.record(
        session, "wls.report-refused", actor=actor, outcome="failure", target=target[:255], code=error.code
    )
    session.commit()
    raise error


def decode_b64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Invalid(f"{field} is not base64", code="report-malformed") from None


def search_reports(
    session: Session,
    *,
    instance_id: str | None,
    hardware_uuid: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[VmReport]:
    query = select(VmReport)
    if instance_id:
        query = query.where(VmReport.instance_id == instance_id)
    if hardware_uuid:
        query = query.where(VmReport.hardware_uuid == hardware_uuid.lower())
    if since is not None:
        query = query.where(VmReport.created_at >= since)
    if until is not None:
        query = query.where(VmReport.created_at <= until)
    return list(session.scalars(query.order_by(VmReport.created_at.desc(), VmReport.id.desc()).limit(limit)))
