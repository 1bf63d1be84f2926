"""Signing and storing reports: a verdict becomes a report row with a signed attestation-result JWT, and its
host manifest is stored once per distinct document.

The JWT is ES256 with the report-signing key; ``kid`` is the SHA-256 thumbprint of its certificate. Report
rows and host manifests are written with Core statements built once, not ORM objects: a report is written
once and never changed, and at hundreds of reports per second the unit of work's bookkeeping costs more than
the row.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.central.context import CentralServices
from secl.central.evidence.verify import Evidence
from secl.central.memos import Memos
from secl.central.reports.judge import Verdict
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_report_models import HostManifestRecord, Report
from secl.central.store.models import utcnow
from secl.core.attestation import AttestationResult, certificate_sha384, sign_attestation_result
from secl.core.hostmanifest import HostManifest
from secl.core.manifestbuild import host_manifest_to_json

log = logging.getLogger("secl.central.hvs")

#: How long a report (and its JWT) is valid. SecL's default report validity is a day.
REPORT_VALIDITY = timedelta(hours=24)

_INSERT_REPORT = insert(Report.__table__)  # type: ignore[arg-type]
_MANIFEST_STORED = select(HostManifestRecord.digest).where(HostManifestRecord.digest == bindparam("digest"))


@dataclass(frozen=True)
class StoredReport:
    """A report row as written (the ``reports`` columns), for the caller that wrote it."""

    id: str
    host_id: str
    trusted: bool
    created_at: datetime
    expires_at: datetime
    trust_report: dict[str, Any]
    flavors_trust: dict[str, Any]
    host_manifest_digest: str
    evidence_digest: str
    jwt: str
    created_by: str
    tags: dict[str, str]


def sign_report(
    session: Session,
    services: CentralServices,
    host: Host,
    evidence: Evidence,
    verdict: Verdict,
    *,
    now: datetime,
    actor: str,
) -> StoredReport:
    """The report row for ``verdict`` with its freshly signed attestation-result JWT, its host manifest
    stored (not committed); :func:`insert_reports` writes the row."""
    expires = now + REPORT_VALIDITY
    report_id = str(uuid.uuid4())
    manifest = evidence.built.manifest
    result = AttestationResult(
        issuer=services.config.hostname,
        subject=host.hardware_uuid or "",
        host_name=host.name,
        issued_at=int(now.timestamp()),
        expires_at=int(expires.timestamp()),
        trusted=verdict.trusted,
        parts=verdict.parts,
        aik_certificate_sha384=certificate_sha384(manifest.aik_certificate)
        if manifest.aik_certificate
        else "",
        report_id=report_id,
        evidence_digest=evidence.digest,
        tags=dict(verdict.tags),
        binding_key_certificate_sha384=verdict.binding_key_certificate_sha384,
    )
    signer = services.keys.report_signer
    # Stored with sub-second precision (``now`` is whole seconds, as JWT times are): a host's reports of one
    # second must still have an order, or "its newest report" is a coin toss.
    created = max(now, utcnow())
    return StoredReport(
        id=report_id,
        host_id=host.id,
        trusted=verdict.trusted,
        created_at=created,
        expires_at=expires,
        trust_report=verdict.trust_report,
        flavors_trust=verdict.flavors_trust,
        host_manifest_digest=store_host_manifest(session, services.memos, manifest),
        evidence_digest=evidence.digest,
        jwt=sign_attestation_result(result, signer.key, signer.kid),
        created_by=actor,
        tags=dict(verdict.tags),
    )


def insert_reports(session: Session, memos: Memos, rows: Sequence[StoredReport | Mapping[str, Any]]) -> None:
    """INSERT report rows, all in one statement (not committed).

    Should a manifest be missing although this process remembered it stored (the database was restored
    from an older backup, or the row was deleted by hand), the memo is dropped and the error raised: the
    next attempt stores the manifest again.
    """
    values = [dict(vars(r)) if isinstance(r, StoredReport) else dict(r) for r in rows]
    if not values:  # a worker's batch whose every job failed: SQLAlchemy deprecates an empty executemany
        return
    try:
        session.connection().execute(_INSERT_REPORT, values)
    except IntegrityError:
        memos.forget_stored_manifests()
        log.error(
            "%d report(s) not stored: the database refused a row (its host or its manifest is missing); "
            "the central forgot which manifests it had stored, the next attempt stores them (hosts %s)",
            len(values),
            sorted({str(v.get("host_id")) for v in values}),
        )
        raise


def manifest_digest(manifest: HostManifest) -> str:
    """SHA-256 of the manifest's SecL JSON with sorted keys: its key in ``host_manifests``."""
    found: str | None = manifest.derived.get("secl-json-sha256")
    if found is None:
        document = orjson.dumps(
            host_manifest_to_json(manifest), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
        )
        found = manifest.derived["secl-json-sha256"] = hashlib.sha256(document).hexdigest()
    return found


def store_host_manifest(session: Session, memos: Memos, manifest: HostManifest) -> str:
    """Store the manifest's SecL JSON once (a row per distinct document); return its digest.

    Rows of ``host_manifests`` are never deleted, so a digest this process has seen committed needs no
    look at the database (:func:`remember_stored_manifest`); the others are looked up before ~50 KB is
    sent, and inserted unless another worker stored the same manifest meanwhile.
    """
    digest = manifest_digest(manifest)
    if memos.stored_manifests.get(digest):
        return digest
    if session.connection().execute(_MANIFEST_STORED, {"digest": digest}).first() is not None:
        # Not remembered yet: in a worker's batch the row may be this transaction's own, which a rollback
        # takes back. remember_stored_manifest records it once the report is committed.
        return digest
    values = {"digest": digest, "document": host_manifest_to_json(manifest), "created_at": utcnow()}
    upsert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    session.execute(
        upsert(HostManifestRecord).values(**values).on_conflict_do_nothing(index_elements=["digest"])
    )
    return digest


def remember_stored_manifest(memos: Memos, report: StoredReport) -> None:
    """Call after committing ``report``: its manifest row is committed too (inserted or found)."""
    memos.stored_manifests.put(report.host_manifest_digest, True)
