"""The key broker's operations: keys (material only in a key store), transfer policies, the trust stores of
other centrals, and key transfers — to a host's TPM on its attestation evidence, or to an image owner's
RSA key. Every release and every refusal is written to the audit log with the key, the host and why."""

from __future__ import annotations

import base64
import binascii
import functools
import logging
from dataclasses import dataclass
from typing import Any, NoReturn

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.context import CentralServices
from secl.central.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError, Unavailable
from secl.central.kbs import keymaterial
from secl.central.kbs.keystore import (
    KeyAlgorithm,
    KeyMaterialInvalid,
    KeySpec,
    KeyStoreError,
    KeyStoreUnavailable,
    StoredKey,
)
from secl.central.kbs.transfer import TransferEvidence, TrustAnchors, authorize_transfer
from secl.central.kbs.transferpolicy import (
    PolicyInvalid,
    TransferPolicy,
    TransferRefused,
    parse_usage_tags,
    usage_string,
)
from secl.central.store.kbs_models import (
    DEFAULT_POLICY_ID,
    KeyRecord,
    TransferPolicyRecord,
    TrustedCertificate,
)
from secl.central.store.models import new_id
from secl.core.keywrap import KeyWrapError, wrap_key

log = logging.getLogger("secl.central.kbs")

REPORT_SIGNER = "report-signer"
PRIVACY_CA = "privacy-ca"


# --- keys --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRequest:
    spec: KeySpec
    material: bytes | None  # None: the store creates the key
    transfer_policy_id: str | None
    label: str
    usage: str


def parse_material(algorithm: KeyAlgorithm, key_string: str) -> bytes:
    """SecL's ``key_string``: base64 of the raw key for AES, a PEM private key for RSA and EC."""
    if algorithm is KeyAlgorithm.AES:
        try:
            return base64.b64decode(key_string, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(
                "key_string of an AES key is base64 of its raw octets", code="key-material-invalid"
            ) from None
    return key_string.encode()


def create_key(session: Session, services: CentralServices, request: KeyRequest, *, actor: str) -> KeyRecord:
    """Create (or, with material, register) a key in the configured store and record it."""
    policy_id = request.transfer_policy_id or DEFAULT_POLICY_ID
    if session.get(TransferPolicyRecord, policy_id) is None:
        raise Invalid(f"no key-transfer policy {policy_id}", code="transfer-policy-not-found")
    try:
        spec = keymaterial.check_spec(request.spec)
    except KeyMaterialInvalid as exc:
        raise Invalid(exc.message, code=exc.code) from None
    key_id = new_id()  # chosen first: the store binds the material to the key's id
    try:
        store = services.key_stores.active
        stored = (
            store.register(key_id, spec, request.material)
            if request.material is not None
            else store.create(key_id, spec)
        )
    except KeyStoreError as exc:
        raise _store_error(exc) from None
    row = KeyRecord(
        id=key_id,
        algorithm=spec.algorithm.value,
        key_length=spec.length,
        curve_type=spec.curve,
        label=request.label,
        usage=request.usage,
        transfer_policy_id=policy_id,
        store=stored.store,
        reference=stored.reference,
        created_by=actor,
    )
    session.add(row)
    audit.record(
        session,
        "key.created" if request.material is None else "key.registered",
        actor=actor,
        outcome="success",
        target=row.id,
        algorithm=row.algorithm,
        store=row.store,
        label=row.label,
    )
    try:
        session.commit()
    except Exception:
        session.rollback()
        # Nothing half-written: the material the store holds for a row that does not exist goes too.
        _forget_material(services, row.id, stored)
        raise
    log.info("key %s (%s) created in the %s store by %s", row.id, row.algorithm, row.store, actor)
    return row


def get_key(session: Session, key_id: str) -> KeyRecord:
    row = session.get(KeyRecord, key_id)
    if row is None:
        raise NotFound(f"no key {key_id}", code="key-not-found")
    return row


def search_keys(session: Session, *, label: str | None, algorithm: str | None) -> list[KeyRecord]:
    query = select(KeyRecord).order_by(KeyRecord.created_at)
    if label:
        query = query.where(KeyRecord.label == label)
    if algorithm:
        query = query.where(KeyRecord.algorithm == algorithm)
    return list(session.scalars(query))


def delete_key(session: Session, services: CentralServices, key_id: str, *, actor: str) -> None:
    row = get_key(session, key_id)
    stored = StoredKey(row.store, row.reference)
    try:
        services.key_stores.named(row.store).delete(row.id, stored)
    except KeyStoreError as exc:
        raise _store_error(exc) from None
    session.delete(row)
    audit.record(session, "key.deleted", actor=actor, outcome="success", target=key_id, store=row.store)
    session.commit()


def _forget_material(services: CentralServices, key_id: str, stored: StoredKey) -> None:
    try:
        services.key_stores.named(stored.store).delete(key_id, stored)
    except KeyStoreError as exc:
        log.warning(
            "key %s: material left in the %s store after a failed write (%s)", key_id, stored.store, exc.code
        )


def _store_error(exc: KeyStoreError) -> ServiceError:
    if isinstance(exc, KeyStoreUnavailable):
        return Unavailable(exc.message, code=exc.code)
    if isinstance(exc, KeyMaterialInvalid):
        return Invalid(exc.message, code=exc.code)
    return Conflict(exc.message, code=exc.code)


# --- transfer policies -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyRequest:
    name: str
    require_trusted: bool
    required_flavor_parts: tuple[str, ...]
    required_tags: dict[str, list[str]]
    usage: str
    max_report_age_seconds: int | None
    hardware_uuids: tuple[str, ...] | None


def create_policy(session: Session, request: PolicyRequest, *, actor: str) -> TransferPolicyRecord:
    try:
        tags = {name: set(values) for name, values in request.required_tags.items()}
        for name, values in parse_usage_tags(request.usage).items():
            tags.setdefault(name, set()).update(values)
        policy = TransferPolicy(
            require_trusted=request.require_trusted,
            required_flavor_parts=request.required_flavor_parts,
            required_tags={name: frozenset(values) for name, values in tags.items()},
            max_report_age_seconds=request.max_report_age_seconds,
            hardware_uuids=frozenset(request.hardware_uuids) if request.hardware_uuids is not None else None,
        )
    except PolicyInvalid as exc:
        raise Invalid(str(exc), code="transfer-policy-invalid") from None
    row = TransferPolicyRecord(
        name=request.name,
        require_trusted=policy.require_trusted,
        required_flavor_parts=list(policy.required_flavor_parts),
        required_tags={name: sorted(values) for name, values in policy.required_tags.items()},
        max_report_age_seconds=policy.max_report_age_seconds,
        hardware_uuids=sorted(policy.hardware_uuids) if policy.hardware_uuids is not None else None,
        created_by=actor,
    )
    session.add(row)
    audit.record(session, "key-policy.created", actor=actor, outcome="success", target=request.name)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            f"a key-transfer policy named {request.name!r} exists", code="already-exists"
        ) from None
    return row


def policy_of(row: TransferPolicyRecord) -> TransferPolicy:
    return TransferPolicy(
        require_trusted=row.require_trusted,
        required_flavor_parts=tuple(row.required_flavor_parts),
        required_tags={name: frozenset(values) for name, values in row.required_tags.items()},
        max_report_age_seconds=row.max_report_age_seconds,
        hardware_uuids=frozenset(row.hardware_uuids) if row.hardware_uuids is not None else None,
    )


def policy_usage(row: TransferPolicyRecord) -> str:
    return usage_string(row.required_tags)


def get_policy(session: Session, policy_id: str) -> TransferPolicyRecord:
    row = session.get(TransferPolicyRecord, policy_id)
    if row is None:
        raise NotFound(f"no key-transfer policy {policy_id}", code="transfer-policy-not-found")
    return row


def search_policies(session: Session, name: str | None) -> list[TransferPolicyRecord]:
    query = select(TransferPolicyRecord).order_by(TransferPolicyRecord.created_at)
    if name:
        query = query.where(TransferPolicyRecord.name == name)
    return list(session.scalars(query))


def delete_policy(session: Session, policy_id: str, *, actor: str) -> None:
    row = get_policy(session, policy_id)
    if row.id == DEFAULT_POLICY_ID:
        raise Conflict("the default key-transfer policy cannot be deleted", code="transfer-policy-protected")
    in_use = session.scalar(
        select(func.count()).select_from(KeyRecord).where(KeyRecord.transfer_policy_id == row.id)
    )
    if in_use:
        raise Conflict(
            f"{in_use} key(s) use this policy: delete them or move them first", code="transfer-policy-in-use"
        )
    session.delete(row)
    audit.record(session, "key-policy.deleted", actor=actor, outcome="success", target=row.name)
    session.commit()


# --- trust stores ------------------------------------------------------------------------------------------


def add_trusted_certificate(session: Session, kind: str, pem: str, *, actor: str) -> TrustedCertificate:
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise Invalid("not a PEM X.509 certificate", code="certificate-malformed") from None
    der = certificate.public_bytes(Encoding.DER)
    row = TrustedCertificate(
        kind=kind,
        subject=certificate.subject.rfc4514_string()[:1024],
        issuer=certificate.issuer.rfc4514_string()[:1024],
        sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        der=der,
        not_after=certificate.not_valid_after_utc,
        created_by=actor,
    )
    session.add(row)
    audit.record(session, f"kbs.{kind}-trusted", actor=actor, outcome="success", target=row.subject[:255])
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("this certificate is trusted already", code="already-exists") from None
    return row


def trusted_certificates(session: Session, kind: str) -> list[TrustedCertificate]:
    query = (
        select(TrustedCertificate)
        .where(TrustedCertificate.kind == kind)
        .order_by(TrustedCertificate.created_at)
    )
    return list(session.scalars(query))


def delete_trusted_certificate(session: Session, kind: str, row_id: str, *, actor: str) -> None:
    row = session.get(TrustedCertificate, row_id)
    if row is None or row.kind != kind:
        raise NotFound(f"no trusted certificate {row_id}", code="certificate-not-found")
    session.delete(row)
    audit.record(session, f"kbs.{kind}-untrusted", actor=actor, outcome="success", target=row.subject[:255])
    session.commit()


@functools.lru_cache(maxsize=256)
def _trusted_certificate(der: bytes) -> x509.Certificate:
    """Parsed once per certificate (an immutable object): the trust stores are read on every transfer, and
    the memo of verified signatures in :mod:`secl.central.kbs.transfer` is keyed by the same bytes."""
    return x509.load_der_x509_certificate(der)


def trust_anchors(session: Session, services: CentralServices) -> TrustAnchors:
    """This central's own report signer and Privacy CA, then those registered for other centrals."""
    rows = list(session.scalars(select(TrustedCertificate)))
    loaded = [(row.kind, _trusted_certificate(row.der)) for row in rows]
    return TrustAnchors(
        report_signers=[
            services.keys.report_signer.certificate,
            *(c for k, c in loaded if k == REPORT_SIGNER),
        ],
        privacy_cas=[services.keys.privacy_ca.issuer.certificate, *(c for k, c in loaded if k == PRIVACY_CA)],
    )


# --- transfers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Released:
    key: KeyRecord
    wrapped: bytes


def transfer_to_host(
    session: Session, services: CentralServices, key_id: str, evidence: TransferEvidence, *, actor: str
) -> Released:
    """Wrap the key to the host's TPM binding key if its evidence satisfies the key's policy."""
    row = get_key(session, key_id)
    try:
        authorized = authorize_transfer(
            evidence,
            trust_anchors(session, services),
            policy_of(get_policy(session, row.transfer_policy_id)),
            memo=services.memos.signatures,
        )
    except TransferRefused as exc:
        # Who the result claims to be about is read only for a refusal's audit row: a release names the
        # verified subject, and decoding the token once more was a tenth of a release.
        claimed = _claimed_host(evidence.attestation_jwt)
        _refuse_transfer(session, Forbidden(exc.message, code=exc.code), row, actor=actor, host=claimed)
    material = _material(session, services, row, actor=actor, host=authorized.result.subject)
    try:
        wrapped = wrap_key(authorized.binding_key, material)
    except KeyWrapError as exc:
        _refuse_transfer(
            session, Conflict(exc.message, code=exc.code), row, actor=actor, host=authorized.result.subject
        )
    audit.record(
        session,
        "key.transferred",
        actor=actor,
        outcome="success",
        target=row.id,
        host=authorized.result.subject,
        host_name=authorized.result.host_name,
        report_id=authorized.result.report_id,
        binding_key=authorized.binding_key_certificate_sha384,
        report_signer=authorized.signer_subject,
    )
    session.commit()
    return Released(row, wrapped)


def transfer_to_owner(
    session: Session, services: CentralServices, key_id: str, public_key_pem: bytes, *, actor: str
) -> Released:
    """The envelope transfer of SecL's WPM: the key wrapped to an RSA public key (or certificate) the caller
    sends, for a caller allowed to hold keys (``KBS:keys:transfer``)."""
    row = get_key(session, key_id)
    envelope = _envelope_key(public_key_pem)
    material = _material(session, services, row, actor=actor, host="")
    try:
        wrapped = wrap_key(envelope, material)
    except KeyWrapError as exc:
        _refuse_transfer(session, Conflict(exc.message, code=exc.code), row, actor=actor, host="")
    audit.record(session, "key.transferred-to-owner", actor=actor, outcome="success", target=row.id)
    session.commit()
    return Released(row, wrapped)


def _envelope_key(pem: bytes) -> rsa.RSAPublicKey:
    try:
        if b"CERTIFICATE" in pem:
            key: Any = x509.load_pem_x509_certificate(pem).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise Invalid(
            "the body is not a PEM RSA public key or certificate", code="envelope-key-malformed"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise Invalid("the envelope key must be RSA of at least 2048 bits", code="envelope-key-unsupported")
    return key


def _material(session: Session, services: CentralServices, row: KeyRecord, *, actor: str, host: str) -> bytes:
    try:
        return services.key_stores.named(row.store).material(row.id, StoredKey(row.store, row.reference))
    except KeyStoreError as exc:
        _refuse_transfer(session, _store_error(exc), row, actor=actor, host=host)


def _claimed_host(token: str) -> str:
    """Who the attestation result says it is about, for the audit row of a refusal (not verified)."""
    try:
        subject = jwt.decode(token, options={"verify_signature": False}).get("sub", "")
    except jwt.PyJWTError:
        return ""
    return subject[:64] if isinstance(subject, str) else ""


def _refuse_transfer(
    session: Session, error: ServiceError, row: KeyRecord, *, actor: str, host: str
) -> NoReturn:
    session.rollback()
    audit.record(
        session,
        "key.transfer-refused",
        actor=actor,
        outcome="failure",
        target=row.id,
        host=host,
        code=error.code,
        reason=error.message,
    )
    session.commit()
    log.warning("key %s refused to host %s: %s (%s)", row.id, host or "-", error.message, error.code)
    raise error
