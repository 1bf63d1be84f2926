"""The verifier: evidence from a host's trust agent, checked, then judged against the host's flavors.

:func:`collect_evidence` asks the agent for its host info, its AIK certificate and a quote over a fresh
32-byte nonce, and accepts the evidence only when the quote verifies with the key of that AIK certificate
(signature, qualifying data SHA-256(nonce), PCR digest over exactly the signed selection). Whether the AIK
certificate was issued by *our* Privacy CA is not decided here: the manifest carries it and the
AikCertificateTrusted rule reports it in the trust report (flavor import refuses such a host outright).
A quote that does not verify, an event log that does not parse, or host info that cannot make a manifest
is refused as :class:`EvidenceInvalid` (409, ``evidence-invalid``) whose ``details.fault`` names the check
(``signature-invalid``, ``quote-nonce-mismatch``, ``pcr-not-quoted``, ``pcr-digest-mismatch``, ...), and
the host's status becomes ``evidence-invalid``. An agent that cannot be reached is refused as 409 with the
agent's code (``agent-unreachable``, ``agent-unauthorized``, ``agent-tls-untrusted``, ...) and the host's
status says so; the status is committed even though the request fails.

:func:`attest_host` builds the trust report from the host's flavor groups (each with its match policies)
and stores it with a signed attestation-result JWT.

Asset tags: when the agent reports a tag digest (``asset_tag``, read from the TPM's NV index), the quote
must verify with SecL's qualifying data SHA-256(SHA-256(nonce) || digest), and the digest goes into the host
manifest, where the ASSET_TAG rules judge it against the host's ASSET_TAG flavor. The Tag CA and the
host's revoked tag certificates are trust anchors. A host that carries a tag is a host for which ASSET_TAG
is defined: under REQUIRED_IF_DEFINED, a tag that no ASSET_TAG flavor vouches for (its flavor or
certificate was deleted) is RequiredFlavorTypeMissing; a host without a tag needs no ASSET_TAG flavor. The
report and its JWT carry the tags of the certificate of a trusted ASSET_TAG flavor, and only those.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from types import MappingProxyType
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from flask import Flask
from secl.central.errors import Conflict
from secl.central.hvs import flavorstore, tagstore
from secl.central.hvs.agentclient import AgentClient, AgentError, QuoteResponse
from secl.central.hvs.flavorstore import FlavorSignatureInvalid
from secl.central.hvs.hostpolicy import (
    FlavorRecord,
    GroupPolicy,
    HostPolicy,
    load_host_policy,
)
from secl.central.hvs.privacyca import privacy_ca
from secl.central.setup import load_issuer
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_report_models import HostManifestRecord, Report
from secl.central.store.hvs_tag_models import TagCertificateRecord
from secl.central.store.models import utcnow
from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.core.appeventlog import parse_event_log as parse_app_event_log
from secl.core.appeventlog import render_event_log
from secl.core.assettag import AssetTagError, parse_tag_certificate
from secl.core.attestation import (
    AttestationResult,
    certificate_sha384,
    evidence_digest,
    evidence_digest_from_log_sha256,
    sign_attestation_result,
)
from secl.core.errors import EvidenceError
from secl.core.eventlog import parse_event_log, pcr_banks_from_json
from secl.core.flavor import SignedFlavor
from secl.core.hostmanifest import HostManifest, PcrEventLog
from secl.core.manifestbuild import (
    ManifestEvidence,
    ManifestMemo,
    RememberedManifest,
    assemble_host_manifest,
    host_manifest_to_json,
    manifest_inputs_key,
)
from secl.core.quote import PCRValues, VerifiedQuote, secl_qualifying_data, verify_quote
from secl.core.rules_assettag import tag_certificate_der
from secl.core.rules_trust import chains_to
from secl.core.tpm import AKPublic, load_ak_public
from secl.core.trustreport import (
    FlavorVerdict,
    TrustAnchors,
    TrustPolicyError,
    TrustReport,
    build_trust_report,
)
from secl.core.verifymemo import ResultMemo

log = logging.getLogger("secl.central.hvs")

NONCE_BYTES = 32
ALL_PCRS = list(range(24))
#: Banks the verifier asks for, in this order, when the host has them active.
BANKS = ("SHA1", "SHA256", "SHA384")
#: How long a report (and its JWT) is valid. SecL's default report validity is a day.
REPORT_VALIDITY = timedelta(hours=24)

_REPORT_SIGNER = "secl.hvs.report_signer"
_INSERT_REPORT = insert(Report.__table__)
_MANIFEST_STORED = select(HostManifestRecord.digest).where(HostManifestRecord.digest == bindparam("digest"))
_TAG_CERTIFICATES = select(
    TagCertificateRecord.sha384, TagCertificateRecord.revoked,
    TagCertificateRecord.not_before, TagCertificateRecord.not_after,
).where(TagCertificateRecord.hardware_uuid == bindparam("hardware_uuid"))  # fmt: skip
_EVIDENCE_MEMOS = "secl.hvs.evidence-memos"
_STORED_MANIFESTS = "secl.hvs.stored-manifests"


class EvidenceInvalid(Conflict):
    code = "evidence-invalid"


class AgentFailed(Conflict):
    """The agent could not be asked; ``code`` is the agent error's (agent-unreachable, ...)."""


@dataclass(frozen=True)
class Evidence:
    """Verified evidence from one host, and the manifest built from it."""

    built: ManifestEvidence
    host_info: dict[str, Any]
    quote: VerifiedQuote
    event_log: bytes
    # SHA-256 of event_log, computed once (the manifest memo keeps it with the log).
    event_log_sha256: bytes
    aik_certificate_pem: str | None
    # The application evidence (Measurement XMLs, PCR 15 events) as bytes, so a changed measurement log
    # changes the digest even when the quoted PCRs (wrongly) did not; empty when the host has none.
    application: bytes = b""

    @cached_property
    def digest(self) -> str:
        if not self.application:
            return evidence_digest_from_log_sha256(self.quote.pcr_digest, self.event_log_sha256)
        framed = len(self.event_log).to_bytes(8, "big") + self.event_log + self.application
        return evidence_digest(self.quote.pcr_digest, framed)


# --- evidence ---------------------------------------------------------------------------------------------


def agent_client(app: Flask, connection_string: str) -> AgentClient:
    return AgentClient(connection_string, app.extensions["secl.keys"])


def _set_status(session: Session, host: Host | None, status: str, detail: str) -> None:
    """Set the host's status and commit it, with whatever else about the host changed (its hardware UUID).
    An unchanged host commits nothing: a worker judging a batch keeps one transaction for all of it."""
    if host is None:
        return
    if (host.status, host.status_detail) != (status, detail):
        host.status, host.status_detail, host.updated_at = status, detail[:4000], utcnow()
    if host in session.dirty:
        session.commit()


def _refuse(session: Session, host: Host | None, fault: str, message: str) -> EvidenceInvalid:
    _set_status(session, host, "evidence-invalid", f"{fault}: {message}")
    name = host.name if host is not None else "the host"
    log.warning("evidence from %s refused: %s (%s)", name, message, fault)
    return EvidenceInvalid(f"the evidence from {name} is refused: {message}", details={"fault": fault})


def _banks(host_info: dict[str, Any]) -> list[str]:
    active = host_info.get("pcr_banks")
    if isinstance(active, list):
        wanted = [bank for bank in BANKS if bank in {str(b).upper() for b in active}]
        if wanted:
            return wanted
    return ["SHA1", "SHA256"]


@dataclass(frozen=True)
class FetchedEvidence:
    """The agent's three answers to one quote request over ``nonce``, not yet checked."""

    nonce: bytes
    host_info: dict[str, Any]
    aik: dict[str, Any]
    answer: QuoteResponse


def fetch_evidence(
    app: Flask, host: Host | None, *, client: AgentClient | None = None, pcrs: Sequence[int] = ALL_PCRS
) -> FetchedEvidence:
    """Ask the host's agent for its host info, AIK and a quote over a fresh nonce (the network part of
    :func:`collect_evidence`; nothing is checked or stored). Raises :class:`AgentError`."""
    own_client = client is None
    if client is None:
        assert host is not None
        client = agent_client(app, host.connection_string)
    nonce = os.urandom(NONCE_BYTES)
    try:
        host_info = client.host_info()
        aik = client.aik()
        return FetchedEvidence(nonce, host_info, aik, client.quote(nonce, list(pcrs), _banks(host_info)))
    finally:
        if own_client:
            client.close()


def agent_failed(session: Session, host: Host | None, exc: AgentError) -> AgentFailed:
    """Commit the host status an agent error means, and return the 409 to raise."""
    _set_status(session, host, exc.host_status, f"{exc.code}: {exc.message}")
    return AgentFailed(exc.message, code=exc.code)


def collect_evidence(
    session: Session,
    app: Flask,
    host: Host | None,
    *,
    client: AgentClient | None = None,
    pcrs: Sequence[int] = ALL_PCRS,
) -> Evidence:
    """Ask the host's agent for evidence, verify it and build the host manifest; update the host's status.

    ``client`` defaults to an :class:`AgentClient` for ``host.connection_string``. Raises
    :class:`AgentFailed` or :class:`EvidenceInvalid` (both 409) after committing the host's new status.
    """
    try:
        fetched = fetch_evidence(app, host, client=client, pcrs=pcrs)
    except AgentError as exc:
        raise agent_failed(session, host, exc) from None
    return accept_evidence(session, app, host, fetched)


def accept_evidence(session: Session, app: Flask, host: Host | None, fetched: FetchedEvidence) -> Evidence:
    """Verify what the agent sent and build the host manifest; record the host's hardware UUID and status
    (committed when they change). Raises :class:`EvidenceInvalid` after committing the host's new status."""
    try:
        evidence = verify_evidence(
            fetched.nonce, fetched.host_info, fetched.aik, fetched.answer, memos=evidence_memos(app)
        )
    except EvidenceError as exc:
        raise _refuse(session, host, exc.code, exc.message) from None
    except (ValueError, TypeError, AttributeError) as exc:  # a shape the parsers did not expect
        raise _refuse(session, host, "evidence-malformed", str(exc)) from None
    built = evidence.built
    if not built.log_verified:
        log.info("event log of %s does not replay to the quoted PCRs: %s", host.name if host else "host",
                 {f"{r.bank}:{r.index}": v for r, v in built.replay_mismatches.items()})  # fmt: skip
    if host is not None:
        _record_hardware_uuid(session, host, fetched.host_info)
    _set_status(session, host, "connected", "")
    return evidence


@dataclass(frozen=True)
class EvidenceMemos:
    """What the verifier remembers between reports, keyed on exact inputs (see :class:`ResultMemo`): host
    manifests (one per host boot, roughly), and per AIK certificate its parsed key and decoded PCR values."""

    manifests: ManifestMemo = field(default_factory=lambda: ManifestMemo(size=4096))
    ak_keys: ResultMemo[str, AKPublic] = field(default_factory=lambda: ResultMemo(size=4096))
    # Per AIK (one per host): the PCR values as the agent sent them (JSON) and as decoded.
    pcr_values: ResultMemo[str, tuple[dict[str, Any], PCRValues]] = field(
        default_factory=lambda: ResultMemo(size=4096)
    )


def evidence_memos(app: Flask) -> EvidenceMemos:
    """The application's memos (made on first use; one per central process), sized by the configuration's
    ``verifier_memo_hosts`` (a remembered manifest is ~260 KiB)."""
    memos = app.extensions.get(_EVIDENCE_MEMOS)
    if memos is None:
        hosts = max(0, int(app.extensions["secl.config"].verifier_memo_hosts))
        memos = app.extensions[_EVIDENCE_MEMOS] = EvidenceMemos(
            manifests=ManifestMemo(size=hosts), ak_keys=ResultMemo(size=max(hosts, 1)),
            pcr_values=ResultMemo(size=max(hosts, 1)),
        )  # fmt: skip
    return memos


def verify_evidence(
    nonce: bytes,
    host_info: dict[str, Any],
    aik: dict[str, Any],
    answer: QuoteResponse,
    *,
    memos: EvidenceMemos | None = None,
) -> Evidence:
    """Check the agent's three answers to a quote request over ``nonce`` and build the host manifest.

    The quote is verified afresh every time (its nonce is new), with the agent's asset-tag digest bound
    into its qualifying data. The manifest is a pure function of the event log, the quoted PCR values,
    the host info, the AIK certificate and the tag digest, so with ``memos`` an unchanged host's manifest
    (and its AIK's parsed key) is taken from the memo instead of being parsed and replayed again.
    Raises :class:`EvidenceError` (its ``code`` names the failed check).
    """
    aik_pem = aik.get("aik_certificate")
    key_source = aik_pem or aik.get("aik")  # without a certificate, AikCertificateTrusted reports it missing
    if not key_source:
        raise EvidenceError("the agent sent neither an AIK certificate nor an AIK", code="aik-missing")
    if not isinstance(key_source, str):
        raise EvidenceError("the agent's AIK certificate (or AIK) is not PEM text", code="aik-malformed")
    if answer.event_log is None:
        raise EvidenceError(
            answer.event_log_error or "no event log in the quote answer", code="event-log-missing"
        )
    ak = _ak_public(key_source, memos)
    values = _pcr_values(answer.pcrs, key_source, memos)
    tag = answer.asset_tag  # believed only because the quote's qualifying data binds it
    quote = verify_quote(
        ak, answer.attest, answer.signature, qualifying_data=secl_qualifying_data(nonce, tag), pcrs=values
    )
    xmls, app_events = application_evidence(answer.raw)
    key = manifest_inputs_key(
        host_info=host_info, verified_quote=quote, aik_certificate_pem=aik_pem, asset_tag_digest=tag,
        measurement_xmls=xmls, application_events=app_events,
    )  # fmt: skip
    remembered = memos.manifests.lookup(key, answer.event_log) if memos is not None else None
    if remembered is None:
        built = assemble_host_manifest(
            host_info=host_info, verified_quote=quote, event_log=parse_event_log(answer.event_log),
            aik_certificate_pem=aik_pem, asset_tag_digest=tag, measurement_xmls=xmls,
            application_events=app_events,
        )  # fmt: skip
        remembered = (
            memos.manifests.remember(key, answer.event_log, built)
            if memos is not None
            else RememberedManifest.of(answer.event_log, built)
        )
    application = render_event_log(app_events) + json.dumps(xmls).encode() if xmls or app_events else b""
    return Evidence(
        remembered.built,
        host_info,
        quote,
        answer.event_log,
        remembered.event_log_sha256,
        aik_pem,
        application,
    )


def _pcr_values(raw: Any, aik: str, memos: EvidenceMemos | None) -> PCRValues:
    # A host between reboots sends the same 48-72 hex values every time: equal JSON (strings compared
    # exactly) decodes to the same values, so the decoded ones are kept per AIK, read-only.
    found = memos.pcr_values.get(aik) if memos is not None else None
    if found is not None and found[0] == raw:
        return found[1]
    decoded = pcr_banks_from_json(raw)
    values = MappingProxyType({bank: MappingProxyType(pcrs) for bank, pcrs in decoded.items()})
    if memos is not None:
        memos.pcr_values.put(aik, (copy.deepcopy(raw), values))
    return values


def _ak_public(pem: str, memos: EvidenceMemos | None) -> AKPublic:
    # Loading the key parses the certificate; a host sends the same certificate report after report.
    found = memos.ak_keys.get(pem) if memos is not None else None
    if found is None:
        found = load_ak_public(pem.encode())
        if memos is not None:
            memos.ak_keys.put(pem, found)
    return found


def application_evidence(body: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[PcrEventLog, ...]]:
    """The agent's ``tcb_measurements`` (Measurement XMLs) and ``measure_log`` (PCR 15 events, SecL's
    measure-log JSON), unverified: the host manifest carries them, and the SOFTWARE rules tie them to the
    quoted PCR 15. A malformed XML is left for the rules to report (XmlMeasurementLogInvalid); a body that
    is not a list of strings, or an event log that is not SecL's shape, refuses the evidence."""
    xmls = body.get("tcb_measurements") or []
    if not isinstance(xmls, list) or not all(isinstance(x, str) for x in xmls):
        raise EvidenceError(
            "tcb_measurements must be a list of Measurement XML strings", code="measurements-malformed"
        )
    log = body.get("measure_log") or []
    if not isinstance(log, list):
        raise EvidenceError("measure_log must be SecL's measure-log list", code="app-event-log-invalid")
    return tuple(xmls), parse_app_event_log(json.dumps(log).encode()) if log else ()


def _record_hardware_uuid(session: Session, host: Host, host_info: dict[str, Any]) -> None:
    raw = host_info.get("hardware_uuid")
    try:
        hardware_uuid = str(uuid.UUID(str(raw)))
    except ValueError:
        raise _refuse(
            session, host, "hardware-uuid-invalid", f"host info hardware_uuid {raw!r} is not a UUID"
        ) from None
    if host.hardware_uuid == hardware_uuid:
        return
    other = session.scalar(select(Host).where(Host.hardware_uuid == hardware_uuid, Host.id != host.id))
    if other is not None:
        raise _refuse(session, host, "hardware-uuid-taken",
                      f"hardware UUID {hardware_uuid} belongs to host {other.name} ({other.id})")  # fmt: skip
    if host.hardware_uuid is not None:
        log.warning("host %s reports hardware UUID %s, was %s", host.name, hardware_uuid, host.hardware_uuid)
    host.hardware_uuid = hardware_uuid


def aik_trusted(app: Flask, evidence: Evidence, at: datetime) -> bool:
    """Whether the evidence's AIK certificate was issued by our Privacy CA (and is valid at ``at``)."""
    der = evidence.built.manifest.aik_certificate
    if der is None:
        return False
    cert = x509.load_der_x509_certificate(der)
    valid = cert.not_valid_before_utc <= at <= cert.not_valid_after_utc
    # The signature check is remembered (by both certificates' exact DER), as the AikCertificateTrusted
    # rule's is: the worker asks for every report it considers re-using.
    return valid and chains_to(
        cert, (privacy_ca(app).issuer.certificate,), at, memo=flavorstore.verification_memo(app)
    )


# --- flavors and trust ------------------------------------------------------------------------------------


def trust_anchors(app: Flask, at: datetime, revoked_tags: frozenset[bytes] = frozenset()) -> TrustAnchors:
    """What the verifier trusts at ``at``: the Privacy CA, the flavor-signing chain, the Tag CA, and the
    revoked tag certificates given."""
    signer = flavorstore.flavor_signer(app)
    return TrustAnchors(
        at=at, privacy_cas=(privacy_ca(app).issuer.certificate,), flavor_signing_cert=signer.certificate,
        flavor_cas=signer.chain[1:], flavor_intermediates=signer.chain[1:], memo=flavorstore.verification_memo(app),
        tag_cas=tagstore.tag_ca_certificates(app), revoked_tag_certificates=revoked_tags,
    )  # fmt: skip


def host_anchors(app: Flask, policy: HostPolicy, at: datetime) -> TrustAnchors:
    """The trust anchors for one host's report: the app's, and the host's revoked tag certificates."""
    return trust_anchors(app, at, policy.revoked_tag_certificates)


def _for_evaluation(app: Flask, record: FlavorRecord) -> SignedFlavor:
    """The stored flavor, verified; one whose signature fails is still evaluated, so FlavorTrusted reports
    it in the trust report (a document that no longer parses is refused: 409 flavor-signature-invalid)."""
    try:
        return flavorstore.verified(app, record)
    except FlavorSignatureInvalid:
        return flavorstore.signed_flavor(record)


def _group_report(
    app: Flask, group: GroupPolicy, *, manifest: Any, anchors: TrustAnchors
) -> tuple[TrustReport, dict[str, str]]:
    """The group's trust report, and the tags its trusted ASSET_TAG flavor vouches for ({} if none)."""
    match = group.match_types()
    flavors = [_for_evaluation(app, record) for record in group.flavors]
    latest: dict[str, SignedFlavor] = {}
    for flavor in flavors:  # oldest first: the last of a LATEST part wins
        if match.get(flavor.flavor.flavor_part) == "LATEST":
            latest[flavor.flavor.flavor_part] = flavor
    flavors = [
        f for f in flavors
        if match.get(f.flavor.flavor_part) != "LATEST" or latest[f.flavor.flavor_part] is f
    ]  # fmt: skip
    required = group.required_parts()
    if manifest.asset_tag_digest and "ASSET_TAG" in match and "ASSET_TAG" not in required:
        required.append("ASSET_TAG")  # the host carries a tag: ASSET_TAG is defined for it
    report = build_trust_report(
        flavors, manifest, anchors,
        match_policy={part: ("ANY_OF" if kind == "LATEST" else kind) for part, kind in match.items()},
        required_parts=required,
    )  # fmt: skip
    return report, _vouched_tags(report, flavors)


def _vouched_tags(report: TrustReport, flavors: Sequence[SignedFlavor]) -> dict[str, str]:
    part = report.parts.get("ASSET_TAG")
    if part is None or not part.trusted:
        return {}
    trusted: FlavorVerdict = next(f for f in part.flavors if f.trusted)
    flavor = next(f for f in flavors if f.flavor.id == trusted.flavor_id)
    der = tag_certificate_der(flavor.flavor)
    try:
        return dict(parse_tag_certificate(der).tag_map) if der else {}
    except AssetTagError:  # cannot happen for a flavor whose TagCertificateTrusted passed
        return {}


@dataclass(frozen=True)
class Verdict:
    trusted: bool
    trust_report: dict[str, Any]
    flavors_trust: dict[str, Any]
    # The asset tags a trusted ASSET_TAG flavor vouches for: what the report and its JWT carry.
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def parts(self) -> dict[str, bool]:
        """Per flavor part, trusted or not (what the attestation result JWT carries)."""
        return {part: bool(entry["trust"]) for part, entry in self.flavors_trust.items()}


def judge(
    session: Session,
    app: Flask,
    host: Host,
    evidence: Evidence,
    at: datetime,
    *,
    policy: HostPolicy | None = None,
) -> Verdict:
    """The trust report of the host against every flavor group it is in (trusted only if all are).

    ``policy`` is the host's groups and flavors when the caller has read them already (the worker does).
    """
    if policy is None:
        policy = load_host_policy(session, app, host)
    anchors = host_anchors(app, policy, at)
    manifest = evidence.built.manifest
    try:
        judged = [(g, *_group_report(app, g, manifest=manifest, anchors=anchors)) for g in policy.groups]
    except TrustPolicyError as exc:
        # The host's flavors cannot be applied to it (its OS names no vendor, or a flavor's vendor has no
        # policy): no report can be made until the host or the flavors change, so a 409 naming why, which
        # the report queue records as the job's failure without retrying.
        raise Conflict(f"host {host.name} cannot be judged: {exc.message}", code=exc.code) from None
    reports = [(g, r) for g, r, _ in judged]
    trusted = bool(reports) and all(r.trusted for _, r in reports)
    results: list[Any] = []
    flavors_trust: dict[str, Any] = {}
    tags: dict[str, str] = {}
    for _group, report, vouched in judged:
        tags |= vouched
        doc = report.to_json()
        results += doc["results"]
        for part, entry in report.flavors_trust_json().items():
            merged = flavors_trust.setdefault(part, {"trust": True, "rules": []})
            merged["trust"] = merged["trust"] and entry["trust"]
            merged["rules"] += entry["rules"]
    policy_name = " / ".join(sorted({r.policy_name for _, r in reports if r.policy_name}))
    if not flavors_trust.get("ASSET_TAG", {}).get("trust"):
        tags = {}  # another group found the host's ASSET_TAG flavors wanting
    return Verdict(
        trusted,
        {"policy_name": policy_name, "results": results, "trusted": trusted,
         "flavorgroups": [g.name for g, _ in reports]},
        flavors_trust, tags,
    )  # fmt: skip


def tag_basis(session: Session, app: Flask, host: Host, evidence: Evidence, at: datetime) -> dict[str, Any]:
    """What a report's asset-tag verdict depends on besides the flavors and the evidence digest: the
    reported tag, the Tag CA, and the host's tag certificates (revoked or not, valid at ``at`` or not)."""
    digest = evidence.built.manifest.asset_tag_digest
    records = (
        session.connection().execute(_TAG_CERTIFICATES, {"hardware_uuid": host.hardware_uuid}).all()
        if host.hardware_uuid is not None
        else []
    )
    return {
        "asset_tag": digest.hex() if digest else None,
        "tag_cas": [c.fingerprint(hashes.SHA256()).hex() for c in tagstore.tag_ca_certificates(app)],
        "certificates": sorted((r.sha384, r.revoked, r.not_before <= at <= r.not_after) for r in records),
    }


# --- reports ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportSigner:
    key: Any
    certificate: x509.Certificate
    kid: str


def report_signer(app: Flask) -> ReportSigner:
    """The report-signing key (P-256) and its certificate; ``kid`` is the certificate's SHA-256 thumbprint."""
    found = app.extensions.get(_REPORT_SIGNER)
    if found is None:
        keys = app.extensions["secl.keys"]
        issuer = load_issuer(keys.report_signing_cert, keys.report_signing_key)
        kid = issuer.certificate.fingerprint(hashes.SHA256()).hex()
        found = app.extensions[_REPORT_SIGNER] = ReportSigner(issuer.key, issuer.certificate, kid)
    return found


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
    app: Flask,
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
        issuer=app.extensions["secl.config"].hostname, subject=host.hardware_uuid or "", host_name=host.name,
        issued_at=int(now.timestamp()), expires_at=int(expires.timestamp()), trusted=verdict.trusted,
        parts=verdict.parts,
        aik_certificate_sha384=certificate_sha384(manifest.aik_certificate) if manifest.aik_certificate else "",
        report_id=report_id, evidence_digest=evidence.digest, tags=dict(verdict.tags),
    )  # fmt: skip
    signer = report_signer(app)
    # Stored with sub-second precision (``now`` is whole seconds, as JWT times are): a host's reports of one
    # second must still have an order, or "its newest report" is a coin toss.
    created = max(now, utcnow())
    return StoredReport(
        id=report_id, host_id=host.id, trusted=verdict.trusted, created_at=created, expires_at=expires,
        trust_report=verdict.trust_report, flavors_trust=verdict.flavors_trust,
        host_manifest_digest=store_host_manifest(session, app, manifest), evidence_digest=evidence.digest,
        jwt=sign_attestation_result(result, signer.key, signer.kid), created_by=actor, tags=dict(verdict.tags),
    )  # fmt: skip


def insert_reports(session: Session, app: Flask, rows: Sequence[StoredReport | Mapping[str, Any]]) -> None:
    """INSERT report rows, all in one statement (not committed).

    An INSERT rather than ORM objects in the session: a report row is written once and never changed, and
    the unit of work's bookkeeping costs more than the row. Should a manifest be missing although this
    process remembered it stored (the database was restored from an older backup, or the row was deleted
    by hand), the memo is dropped and the error raised: the next attempt stores the manifest again.
    """
    values = [dict(vars(r)) if isinstance(r, StoredReport) else dict(r) for r in rows]
    if not values:  # a worker's batch whose every job failed: SQLAlchemy deprecates an empty executemany
        return
    try:
        session.connection().execute(_INSERT_REPORT, values)
    except IntegrityError:
        if app.extensions.pop(_STORED_MANIFESTS, None) is not None:
            log.error(
                "%d report(s) not stored: the database refused a row (its host or its manifest is missing); "
                "the central forgot which manifests it had stored, the next attempt stores them (hosts %s)",
                len(values), sorted({v.get("host_id") for v in values}),
            )  # fmt: skip
        raise


def manifest_digest(manifest: HostManifest) -> str:
    """SHA-256 of the manifest's SecL JSON with sorted keys: its key in ``host_manifests``."""
    found = manifest.derived.get("secl-json-sha256")
    if found is None:
        document = orjson.dumps(
            host_manifest_to_json(manifest), option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
        )
        found = manifest.derived["secl-json-sha256"] = hashlib.sha256(document).hexdigest()
    return found


def store_host_manifest(session: Session, app: Flask, manifest: HostManifest) -> str:
    """Store the manifest's SecL JSON once (a row per distinct document); return its digest.

    Rows of ``host_manifests`` are never deleted, so a digest this process has seen committed needs no
    look at the database (:func:`remember_stored_manifest`); the others are looked up before ~50 KB is
    sent, and inserted unless another worker stored the same manifest meanwhile.
    """
    digest = manifest_digest(manifest)
    if stored_manifests(app).get(digest):
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


def stored_manifests(app: Flask) -> ResultMemo[str, bool]:
    """The digests of host manifests this process knows to be committed."""
    memo = app.extensions.get(_STORED_MANIFESTS)
    if memo is None:
        memo = app.extensions[_STORED_MANIFESTS] = ResultMemo(size=4096)
    return memo


def remember_stored_manifest(app: Flask, report: StoredReport) -> None:
    """Call after committing ``report``: its manifest row is committed too (inserted or found)."""
    stored_manifests(app).put(report.host_manifest_digest, True)


def attest_host(session: Session, app: Flask, host: Host, *, actor: str) -> StoredReport:
    """Collect evidence from the host, judge it, sign and store the report (committed)."""
    return report_on(session, app, host, collect_evidence(session, app, host), actor=actor)


def report_on(session: Session, app: Flask, host: Host, evidence: Evidence, *, actor: str) -> StoredReport:
    """Judge verified evidence from ``host``, then sign and store the report (committed).

    A report is not written to the audit log: its row is itself an append-only record of who asked
    (``created_by``), when and with what outcome, and an audit row beside it would double the writes of
    the busiest path (a fleet re-attested hourly) to say the same thing twice.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    verdict = judge(session, app, host, evidence, now)
    row = sign_report(session, app, host, evidence, verdict, now=now, actor=actor)
    insert_reports(session, app, [row])
    session.commit()
    remember_stored_manifest(app, row)
    log.info("report %s for host %s: %s", row.id, host.name, "trusted" if verdict.trusted else "UNTRUSTED")
    return row
