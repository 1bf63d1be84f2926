"""Verifying evidence: a host's fetched answers checked, and the host manifest built from them.

:func:`accept_evidence` accepts the evidence only when the quote verifies with the key of the AIK certificate
the agent sent (signature, qualifying data SHA-256(nonce), PCR digest over exactly the signed selection).
Whether the AIK certificate was issued by *our* Privacy CA is not decided here: the manifest carries it and
the AikCertificateTrusted rule reports it in the trust report (:func:`aik_trusted`; flavor import refuses
such a host outright). A quote that does not verify, an event log that does not parse, or host info that
cannot make a manifest is refused as :class:`EvidenceInvalid` (``evidence-invalid``) whose
``details.fault`` names the check (``signature-invalid``, ``quote-nonce-mismatch``, ``pcr-not-quoted``,
``pcr-digest-mismatch``, ...), and the host's status becomes ``evidence-invalid``. An agent that cannot be
reached is refused as :class:`AgentFailed` with the agent's code (``agent-unreachable``,
``agent-unauthorized``, ``agent-tls-untrusted``, ...) and the host's status says so; the status is committed
even though the caller fails.

Asset tags: when the agent reports a tag digest (``asset_tag``, read from the TPM's NV index), the quote
must verify with SecL's qualifying data SHA-256(SHA-256(nonce) || digest), and the digest goes into the host
manifest, where the ASSET_TAG rules judge it (:mod:`secl.central.reports.judge`).

The host's own claims (:class:`~secl.central.evidence.hostinfo.ClaimedHostInfo`) become a
:class:`~secl.central.evidence.hostinfo.VerifiedHost` here, with the quote; only then is its hardware UUID
recorded on the host.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from types import MappingProxyType
from typing import Any

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from secl.central.context import CentralServices
from secl.central.errors import Conflict
from secl.central.evidence.agentclient import AgentClient, AgentError, QuoteResponse
from secl.central.evidence.fetch import ALL_PCRS, FetchedEvidence, fetch_evidence
from secl.central.evidence.hostinfo import ClaimedHostInfo, VerifiedHost
from secl.central.memos import EvidenceMemos
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.models import utcnow
from secl.core.appeventlog import parse_event_log as parse_app_event_log
from secl.core.appeventlog import render_event_log
from secl.core.attestation import evidence_digest, evidence_digest_from_log_sha256
from secl.core.errors import EvidenceError
from secl.core.eventlog import parse_event_log, pcr_banks_from_json
from secl.core.hostmanifest import PcrEventLog
from secl.core.manifestbuild import (
    ManifestEvidence,
    RememberedManifest,
    assemble_host_manifest,
    manifest_inputs_key,
)
from secl.core.quote import PCRValues, VerifiedQuote, secl_qualifying_data, verify_quote
from secl.core.rules_trust import chains_to
from secl.core.tpm import AKPublic, load_ak_public

log = logging.getLogger("secl.central.hvs")


class EvidenceInvalid(Conflict):
    code = "evidence-invalid"


class AgentFailed(Conflict):
    """The agent could not be asked; ``code`` is the agent error's (agent-unreachable, ...)."""


@dataclass(frozen=True)
class Evidence:
    """Verified evidence from one host, and the manifest built from it."""

    built: ManifestEvidence
    host_info: VerifiedHost
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


# --- the host's status ------------------------------------------------------------------------------------


def set_host_status(session: Session, host: Host | None, status: str, detail: str) -> None:
    """Set the host's status and commit it, with whatever else about the host changed (its hardware UUID).
    An unchanged host commits nothing: a worker judging a batch keeps one transaction for all of it."""
    if host is None:
        return
    if (host.status, host.status_detail) != (status, detail):
        host.status, host.status_detail, host.updated_at = status, detail[:4000], utcnow()
    if host in session.dirty:
        session.commit()


def _refuse(session: Session, host: Host | None, fault: str, message: str) -> EvidenceInvalid:
    set_host_status(session, host, "evidence-invalid", f"{fault}: {message}")
    name = host.name if host is not None else "the host"
    log.warning("evidence from %s refused: %s (%s)", name, message, fault)
    return EvidenceInvalid(f"the evidence from {name} is refused: {message}", details={"fault": fault})


def agent_failed(session: Session, host: Host | None, exc: AgentError) -> AgentFailed:
    """Commit the host status an agent error means, and return the error to raise."""
    set_host_status(session, host, exc.host_status, f"{exc.code}: {exc.message}")
    return AgentFailed(exc.message, code=exc.code)


# --- collecting and accepting -----------------------------------------------------------------------------


def collect_evidence(
    session: Session,
    services: CentralServices,
    host: Host | None,
    *,
    client: AgentClient | None = None,
    pcrs: Sequence[int] = ALL_PCRS,
) -> Evidence:
    """Ask the host's agent for evidence, verify it and build the host manifest; update the host's status.

    ``client`` defaults to an :class:`AgentClient` for ``host.connection_string``. Raises
    :class:`AgentFailed` or :class:`EvidenceInvalid` after committing the host's new status.
    """
    try:
        fetched = fetch_evidence(services.files, host, client=client, pcrs=pcrs)
    except AgentError as exc:
        raise agent_failed(session, host, exc) from None
    return accept_evidence(session, services.memos.evidence, host, fetched)


def accept_evidence(
    session: Session, memos: EvidenceMemos, host: Host | None, fetched: FetchedEvidence
) -> Evidence:
    """Verify what the agent sent and build the host manifest; record the host's hardware UUID and status
    (committed when they change). Raises :class:`EvidenceInvalid` after committing the host's new status."""
    try:
        evidence = verify_evidence(fetched.nonce, fetched.host_info, fetched.aik, fetched.answer, memos=memos)
    except EvidenceError as exc:
        raise _refuse(session, host, exc.code, exc.message) from None
    except (ValueError, TypeError, AttributeError) as exc:  # a shape the parsers did not expect
        raise _refuse(session, host, "evidence-malformed", str(exc)) from None
    built = evidence.built
    if not built.log_verified:
        log.info(
            "event log of %s does not replay to the quoted PCRs: %s",
            host.name if host else "host",
            {f"{r.bank}:{r.index}": v for r, v in built.replay_mismatches.items()},
        )
    if host is not None:
        _record_hardware_uuid(session, host, evidence.host_info)
    set_host_status(session, host, "connected", "")
    return evidence


def verify_evidence(
    nonce: bytes,
    host_info: ClaimedHostInfo,
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
    # The quote verified: from here on the host's claims are part of verified evidence.
    verified = VerifiedHost(host_info.document)
    xmls, app_events = application_evidence(answer.raw)
    key = manifest_inputs_key(
        host_info=verified.document,
        verified_quote=quote,
        aik_certificate_pem=aik_pem,
        asset_tag_digest=tag,
        measurement_xmls=xmls,
        application_events=app_events,
    )
    remembered = memos.manifests.lookup(key, answer.event_log) if memos is not None else None
    if remembered is None:
        built = assemble_host_manifest(
            host_info=verified.document,
            verified_quote=quote,
            event_log=parse_event_log(answer.event_log),
            aik_certificate_pem=aik_pem,
            asset_tag_digest=tag,
            measurement_xmls=xmls,
            application_events=app_events,
        )
        remembered = (
            memos.manifests.remember(key, answer.event_log, built)
            if memos is not None
            else RememberedManifest.of(answer.event_log, built)
        )
    application = render_event_log(app_events) + json.dumps(xmls).encode() if xmls or app_events else b""
    return Evidence(
        remembered.built,
        verified,
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


def _record_hardware_uuid(session: Session, host: Host, verified: VerifiedHost) -> None:
    try:
        hardware_uuid = verified.hardware_uuid()
    except ValueError:
        raise _refuse(
            session,
            host,
            "hardware-uuid-invalid",
            f"host info hardware_uuid {verified.raw_hardware_uuid!r} is not a UUID",
        ) from None
    if host.hardware_uuid == hardware_uuid:
        return
    other = session.scalar(select(Host).where(Host.hardware_uuid == hardware_uuid, Host.id != host.id))
    if other is not None:
        raise _refuse(
            session,
            host,
            "hardware-uuid-taken",
            f"hardware UUID {hardware_uuid} belongs to host {other.name} ({other.id})",
        )
    if host.hardware_uuid is not None:
        log.warning("host %s reports hardware UUID %s, was %s", host.name, hardware_uuid, host.hardware_uuid)
    host.hardware_uuid = hardware_uuid


def aik_trusted(services: CentralServices, evidence: Evidence, at: datetime) -> bool:
    """Whether the evidence's AIK certificate was issued by our Privacy CA (and is valid at ``at``)."""
    der = evidence.built.manifest.aik_certificate
    if der is None:
        return False
    cert = x509.load_der_x509_certificate(der)
    valid = cert.not_valid_before_utc <= at <= cert.not_valid_after_utc
    # The signature check is remembered (by both certificates' exact DER), as the AikCertificateTrusted
    # rule's is: the worker asks for every report it considers re-using.
    return valid and chains_to(
        cert, (services.keys.privacy_ca.issuer.certificate,), at, memo=services.memos.signatures
    )
