"""The workload service's key requests: a host's workload agent asks for the key an image flavor names; the
service finds the host's evidence (its newest report if young enough for the key's policy, else a new
attestation), hands it to the key broker (this central's, in process, or a remote one over verified TLS)
and answers the key wrapped to the host's TPM binding key. Wrapped keys are cached per host and key URL.

Every outcome — released, served from the cache, refused, broker unreachable — is one audit row
(``wls.key-*``); the broker writes its own rows for what it decided.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import jwt
import requests
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.context import CentralServices
from secl.central.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError, Unavailable
from secl.central.kbs import service as kbs
from secl.central.kbs.transfer import TransferEvidence
from secl.central.kbs.transferpolicy import DEFAULT_MAX_REPORT_AGE
from secl.central.privacyca.hostkeys import host_key_certificate
from secl.central.reports.service import attest_host
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_report_models import HostManifestRecord, Report
from secl.central.store.kbs_models import HostKeyCertificate
from secl.central.store.wls_models import CachedKey
from secl.core.certifiedkey import KeyUsage
from secl.core.errors import EvidenceError

log = logging.getLogger("secl.central.wls")

#: A key URL of a key broker: ``…/kbs/v1/keys/<id>/transfer`` (or without ``/transfer``), ours or remote.
_KEY_PATH = re.compile(r"^(?:.*)/kbs/v1/keys/([0-9a-fA-F-]{36})(?:/transfer)?/?$")
#: A report is taken only with this margin left before the policy's age limit, so that it is still young
#: enough when the broker checks it a moment later.
_AGE_MARGIN_SECONDS = 5
_MAX_WRAPPED = 64 * 1024


@dataclass(frozen=True)
class KeyRequest:
    hardware_uuid: str
    key_url: str
    #: The host name of a caller that signed in with a host assertion; None for a user (an administrator).
    caller_host: str | None
    #: The authorities (``host[:port]``) this central was reached at: a key URL naming one is in-process.
    own_authorities: frozenset[str]


@dataclass(frozen=True)
class WrappedKey:
    key_id: str
    wrapped: bytes
    report_id: str
    cached: bool


def request_key(
    session: Session, services: CentralServices, request: KeyRequest, *, actor: str
) -> WrappedKey:
    """The key at ``request.key_url`` wrapped to the TPM of the host ``request.hardware_uuid`` names."""
    hardware_uuid = request.hardware_uuid.lower()
    host = _requested_host(session, hardware_uuid, request.caller_host, actor=actor, key_url=request.key_url)
    try:
        local_key_id, key_id = _parse_key_url(request.key_url, request.own_authorities)
    except Invalid as exc:
        _refuse(session, exc, actor=actor, host=host.name, key_id=request.key_url[:255])
    try:
        if local_key_id is None:
            _broker_ca(services)  # before attesting: a remote broker this central cannot verify is no use
        max_age = _max_report_age(session, local_key_id)
        newest = _newest_report(session, host.id)
        cached = _cached(
            session, services, host=host, key_url=request.key_url, newest=newest, max_age=max_age
        )
        if cached is not None:
            audit.record(
                session, "wls.key-released", actor=actor, outcome="success", target=key_id,
                host=host.name, report_id=cached.report_id, cached=True,
            )  # fmt: skip
            session.commit()
            return WrappedKey(cached.key_id, cached.wrapped, cached.report_id, cached=True)
        binding = _binding_key(session, host)
        report = newest if newest is not None and _usable(newest, binding, max_age) else None
        if report is None:
            stored = attest_host(session, services, host, actor=actor)
            report = session.get(Report, stored.id)
            assert report is not None  # attest_host committed it
        evidence = _evidence(session, report, binding)
        if local_key_id is not None:
            released = kbs.transfer_to_host(session, services, local_key_id, evidence, actor=actor)
            wrapped = released.wrapped
        else:
            wrapped = _remote_transfer(services, request.key_url, evidence)
    except (ServiceError, EvidenceError) as exc:
        _refuse(session, exc, actor=actor, host=host.name, key_id=key_id)
    _remember(session, host.id, request.key_url, key_id=key_id, wrapped=wrapped, report=report)
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request for the same host and key cached its answer first: this one stands anyway.
        session.rollback()
    audit.record(
        session, "wls.key-released", actor=actor, outcome="success", target=key_id,
        host=host.name, report_id=report.id, cached=False, broker="local" if local_key_id else "remote",
    )  # fmt: skip
    session.commit()
    log.info("key %s released to host %s (report %s)", key_id, host.name, report.id)
    return WrappedKey(key_id, wrapped, report.id, cached=False)


def _requested_host(
    session: Session, hardware_uuid: str, caller_host: str | None, *, actor: str, key_url: str
) -> Host:
    # Agents report SMBIOS UUIDs in either case; compare them in lower case.
    host = session.scalar(select(Host).where(func.lower(Host.hardware_uuid) == hardware_uuid))
    # A host may ask only for itself; an unknown UUID gets the same answer, so that a host learns nothing
    # about which other hosts exist.
    if caller_host is not None and (host is None or host.name != caller_host):
        _refuse(
            session,
            Forbidden(
                f"host {caller_host} may ask for keys only for its own hardware UUID",
                code="host-mismatch",
            ),
            actor=actor,
            host=caller_host,
            key_id=key_url[:255],
        )
    if host is None:
        _refuse(
            session,
            NotFound(f"no host with hardware UUID {hardware_uuid}", code="host-not-found"),
            actor=actor,
            host="",
            key_id=key_url[:255],
        )
    return host


def _parse_key_url(key_url: str, own_authorities: frozenset[str]) -> tuple[str | None, str]:
    """(the key id when the URL names this central's own broker, else None; the key id)."""
    url = urlsplit(key_url)
    match = _KEY_PATH.match(url.path)
    if url.scheme not in ("https", "http") or not url.netloc or match is None:
        raise Invalid(
            "key_url must be a key broker's https://<host>/kbs/v1/keys/<id>/transfer URL",
            code="key-url-invalid",
        )
    key_id = match.group(1).lower()
    local = url.netloc.lower() in own_authorities
    if not local and url.scheme != "https":
        raise Invalid("a remote key broker is reached over https only", code="key-url-invalid")
    return (key_id if local else None), key_id


def _max_report_age(session: Session, local_key_id: str | None) -> int:
    """The key's policy's report-age limit; SecL's default for a remote key (its policy is not ours to
    read) and for a policy without a limit (the service still wants a recent verdict)."""
    if local_key_id is None:
        return DEFAULT_MAX_REPORT_AGE
    key = kbs.get_key(session, local_key_id)
    policy = kbs.get_policy(session, key.transfer_policy_id)
    return policy.max_report_age_seconds or DEFAULT_MAX_REPORT_AGE


def _newest_report(session: Session, host_id: str) -> Report | None:
    return session.scalar(
        select(Report)
        .where(Report.host_id == host_id)
        .order_by(Report.created_at.desc(), Report.id.desc())
        .limit(1)
    )


def _young(created_at: datetime, max_age: int) -> bool:
    age = (datetime.now(UTC) - created_at).total_seconds()
    return age <= max(max_age - _AGE_MARGIN_SECONDS, 1)


def _cached(
    session: Session,
    services: CentralServices,
    *,
    host: Host,
    key_url: str,
    newest: Report | None,
    max_age: int,
) -> CachedKey | None:
    """A cached wrapped key still good to serve: cached within ``key_cache_seconds``, released on the
    host's newest report (a newer verdict, trusted or not, voids it), which is young enough for the policy,
    to the binding key the host still has certified."""
    row = session.get(CachedKey, (host.id, key_url))
    if row is None or newest is None or row.report_id != newest.id:
        return None
    binding = host_key_certificate(session, host.id, KeyUsage.BINDING)
    if binding is None or binding.created_at > row.created_at:
        return None  # wrapped to a binding key the host no longer has certified
    cache_age = (datetime.now(UTC) - row.created_at).total_seconds()
    if cache_age > services.config.key_cache_seconds or not _young(row.report_created_at, max_age):
        return None
    return row


def _remember(
    session: Session, host_id: str, key_url: str, *, key_id: str, wrapped: bytes, report: Report
) -> None:
    row = session.get(CachedKey, (host_id, key_url))
    if row is None:
        row = CachedKey(host_id=host_id, key_url=key_url)
        session.add(row)
    row.key_id = key_id
    row.wrapped = wrapped
    row.report_id = report.id
    row.report_created_at = report.created_at
    row.created_at = datetime.now(UTC)


def _binding_key(session: Session, host: Host) -> HostKeyCertificate:
    binding = host_key_certificate(session, host.id, KeyUsage.BINDING)
    if binding is None:
        raise Forbidden(
            f"host {host.name} has no certified binding key: its workload agent must have one certified "
            "(POST /hvs/v2/rpc/certify-host-binding-key)",
            code="binding-key-not-certified",
        )
    return binding


def _usable(report: Report, binding: HostKeyCertificate, max_age: int) -> bool:
    """Whether ``report`` can go to the broker: young enough, and judged with the host's current binding
    key (a report from before the key was certified, or re-certified, names none or another; the broker
    would refuse it)."""
    if not _young(report.created_at, max_age):
        return False
    try:
        # Our own stored JWT: its signature was made here; only the claim is read.
        claims = jwt.decode(report.jwt, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return bool(claims.get("binding_key_certificate_sha384") == binding.sha384)


def _evidence(session: Session, report: Report, binding: HostKeyCertificate) -> TransferEvidence:
    """The host's evidence for the broker: the report's JWT, the AIK certificate of the manifest the
    report was judged on (the one the JWT names), and the host's certified binding key."""
    manifest = session.get(HostManifestRecord, report.host_manifest_digest)
    encoded = manifest.document.get("aik_certificate") if manifest is not None else None
    try:
        aik = base64.b64decode(encoded or "", validate=True)
    except (binascii.Error, ValueError):
        aik = b""
    if not aik:
        raise Conflict(f"report {report.id} carries no AIK certificate", code="aik-certificate-missing")
    return TransferEvidence(
        attestation_jwt=report.jwt, aik_certificate=aik, binding_key_certificate=binding.der
    )


def _broker_ca(services: CentralServices) -> Path:
    configured = services.config.wls_key_broker_ca
    if not configured:
        raise Unavailable(
            "the key URL names another key broker, and no CA bundle for remote key brokers is configured "
            "(wls_key_broker_ca in central.toml)",
            code="key-broker-ca-not-configured",
        )
    path = Path(configured)
    return path if path.is_absolute() else services.config.keys_dir / path


def _remote_transfer(services: CentralServices, key_url: str, evidence: TransferEvidence) -> bytes:
    """POST the evidence to a remote broker's transfer URL, its TLS certificate checked against the
    configured CA bundle; the broker's refusal comes back with the broker's own code."""
    url = urlsplit(key_url)
    path = url.path.rstrip("/")
    transfer_url = url._replace(path=path if path.endswith("/transfer") else path + "/transfer").geturl()
    body = {
        "attestation_result": evidence.attestation_jwt,
        "aik_certificate": base64.b64encode(evidence.aik_certificate).decode(),
        "binding_key_certificate": base64.b64encode(evidence.binding_key_certificate).decode(),
    }
    try:
        response = requests.post(
            transfer_url,
            json=body,
            verify=str(_broker_ca(services)),
            timeout=services.config.wls_key_broker_timeout_seconds,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise Unavailable(
            f"the key broker at {url.netloc} cannot be reached ({type(exc).__name__})",
            code="key-broker-unreachable",
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    if response.status_code != 200:
        code = str(answer.get("code") or "key-broker-refused")[:64]
        message = f"the key broker at {url.netloc} refused: {str(answer.get('message', ''))[:512]}"
        if response.status_code in (401, 403):
            raise Forbidden(message, code=code)
        if response.status_code == 404:
            raise NotFound(message, code=code)
        if response.status_code >= 500:
            raise Unavailable(message, code=code)
        raise Conflict(message, code=code)
    payload = answer.get("payload")
    try:
        wrapped = base64.b64decode(payload if isinstance(payload, str) else "", validate=True)
    except (binascii.Error, ValueError):
        wrapped = b""
    if not wrapped or len(wrapped) > _MAX_WRAPPED:
        raise Unavailable(
            f"the key broker at {url.netloc} answered no wrapped key", code="key-broker-malformed"
        )
    return wrapped


def _refuse(
    session: Session, error: ServiceError | EvidenceError, *, actor: str, host: str, key_id: str
) -> NoReturn:
    session.rollback()
    audit.record(
        session,
        "wls.key-refused",
        actor=actor,
        outcome="failure",
        target=key_id,
        host=host,
        code=error.code,
        reason=error.message[:1024],
    )
    session.commit()
    log.warning("key %s refused to host %s: %s (%s)", key_id, host or "-", error.message, error.code)
    raise error
