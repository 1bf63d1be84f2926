"""The Privacy CA: AIK certification through TPM2 MakeCredential / ActivateCredential, and the EK trust store.

A host sends its EK certificate, its EK public area and its AIK public area. The central checks that the EK
certificate chains to a trusted TPM vendor CA (:func:`secl.core.ekcert.verify_ek_certificate`, tolerant of
real-world encodings), that the certificate's key is the EK's, and that the AIK is a restricted signing key
that cannot leave its TPM. It then encrypts a random 32-byte secret to the EK, bound to the AIK's name
(``tpm2_pytss.utils.make_credential``, no TPM needed here). Only that TPM can recover the secret, and only
while it holds an object with that name (TPM2_ActivateCredential); the host returns it and gets an X.509
certificate for the AIK signed by the Privacy CA.

Challenge state is a database row (only the secret's SHA-256), so any central instance can redeem a
challenge another one issued, and an atomic ``UPDATE ... WHERE used = false`` lets it be redeemed once.

The AIK certificate's subject is ``O=secl, OU=AIK, CN=<hex of the AIK name's SHA-256 digest>``: the TPM
name is ``000b`` followed by that digest, so anyone holding the AIK public area can recompute it. That is why
AIKs must use SHA-256 as their name algorithm (and keeps the CN within X.509's 64 characters).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import delete, update
from sqlalchemy.orm import Session
from tpm2_pytss.constants import TPM2_ALG, TPMA_OBJECT
from tpm2_pytss.types import TPM2B_NAME, TPM2B_PUBLIC
from tpm2_pytss.utils import make_credential

from secl.central import audit
from secl.central.cms import pki
from secl.central.context import CentralServices
from secl.central.endorsements.service import registered_ek, trusted_cas
from secl.central.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from secl.central.store.db import rowcount
from secl.central.store.hvs_models import AIKChallenge
from secl.central.store.models import utcnow
from secl.core.ekcert import EKTrustStore, load_ek_certificate, verify_ek_certificate
from secl.core.errors import EKCertificateError, EvidenceError
from secl.core.tpm import ak_from_public_area, public_name, unmarshal_exact

log = logging.getLogger("secl.central.hvs")

#: How long a host has to activate the credential and answer.
CHALLENGE_TTL = timedelta(minutes=5)
#: Challenges never redeemed and expired for longer than this are deleted when new ones are issued (the audit
#: log keeps them). Redeemed ones stay: they are the record of which host each AIK certificate was issued to.
CHALLENGE_RETENTION = timedelta(days=1)
SECRET_BYTES = 32


def prune_challenges(session: Session, now: datetime) -> None:
    """Delete the challenges that expired unredeemed more than :data:`CHALLENGE_RETENTION` ago.

    A redeemed challenge is kept for as long as the central runs: certify-host-binding-key finds the host an
    AIK certificate was issued to by its serial there (deleting them made every host unable to have its
    keys certified one day after enrolling its AIK, as soon as any other host enrolled one).
    """
    session.execute(
        delete(AIKChallenge).where(
            AIKChallenge.expires_at < now - CHALLENGE_RETENTION, AIKChallenge.certificate_serial.is_(None)
        )
    )


# An AIK must be a restricted signing key created in, and unable to leave, its TPM.
_AIK_REQUIRED = (
    TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.RESTRICTED
    | TPMA_OBJECT.SIGN_ENCRYPT
)
# An EK is a restricted decryption (storage) key: only such a key can activate a credential.
_EK_REQUIRED = TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.DECRYPT
_KEY_TYPES = (TPM2_ALG.RSA, TPM2_ALG.ECC)


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


# --- identity challenge request -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedChallenge:
    row: AIKChallenge
    credential_blob: bytes  # marshalled TPM2B_ID_OBJECT
    encrypted_secret: bytes  # marshalled TPM2B_ENCRYPTED_SECRET


def audit_refusal(
    session: Session, error: ServiceError, action: str, *, actor: str, target: str, **details: Any
) -> NoReturn:
    """Audit a refused Privacy CA operation in a transaction of its own, then raise ``error``."""
    session.rollback()
    audit.record(
        session,
        action,
        actor=actor,
        outcome="failure",
        target=target[:255],
        code=error.code,
        reason=error.message,
        **details,
    )
    session.commit()
    raise error


def _public_area(data: bytes, what: str) -> TPM2B_PUBLIC:
    try:
        return unmarshal_exact(TPM2B_PUBLIC, data, what)
    except EvidenceError as exc:
        raise Invalid(exc.message, code=f"{what.replace('_', '-')}-malformed") from None


def _spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _ek_key(public: TPM2B_PUBLIC) -> bytes:
    """The EK's SubjectPublicKeyInfo (DER), after checking the public area describes an EK-like key."""
    area = public.publicArea
    attributes = int(area.objectAttributes)
    if area.type not in _KEY_TYPES or attributes & _EK_REQUIRED != _EK_REQUIRED:
        raise Invalid(
            f"ek_public is not a restricted RSA or ECC decryption key (attributes 0x{attributes:08x})",
            code="ek-not-acceptable",
        )
    try:
        return _spki(serialization.load_pem_public_key(public.to_pem()))
    except Exception as exc:  # tpm2-pytss and pyca report unsupported curves and sizes in various ways
        raise Invalid(f"ek_public cannot be used: {exc}", code="ek-not-acceptable") from None


def check_aik(public: TPM2B_PUBLIC) -> bytes:
    """Check that an AIK public area is acceptable; return its TPM name."""
    area = public.publicArea
    attributes = int(area.objectAttributes)
    problems = []
    missing = TPMA_OBJECT(_AIK_REQUIRED & ~attributes)
    if missing:
        problems.append(f"lacks {missing}")
    if attributes & TPMA_OBJECT.DECRYPT:
        problems.append("is also a decryption key")
    if area.type not in _KEY_TYPES:
        problems.append(f"is of type {area.type}, not RSA or ECC")
    if area.nameAlg != TPM2_ALG.SHA256:
        problems.append(f"has name algorithm {area.nameAlg}, not SHA-256")
    if problems:
        raise Invalid(
            f"the AIK {'; '.join(problems)} (attributes 0x{attributes:08x}): it must be a restricted "
            "RSA or ECC signing key with fixedTPM, fixedParent and sensitiveDataOrigin, named with SHA-256",
            code="aik-not-acceptable",
        )
    try:
        ak_from_public_area(area)  # converts to a pyca key: refuses what cannot go into a certificate
        return public_name(area)
    except EvidenceError as exc:
        raise Invalid(f"the AIK cannot be certified: {exc.message}", code="aik-not-acceptable") from None


def request_challenge(
    session: Session,
    services: CentralServices,
    *,
    ek_certificate: bytes,
    ek_public: bytes,
    aik_public: bytes,
    host_name: str,
    actor: str,
    enrolled_host: str | None = None,
) -> IssuedChallenge:
    """Check the EK certificate, the EK and the AIK, and issue a MakeCredential challenge (committed).
    Each refusal of a trust decision is audited (``aik.challenge-refused``) before it is raised.

    ``enrolled_host``: the host name of the caller's enrollment token (None for a user), which may ask
    for its own name only.
    """
    if enrolled_host is not None and enrolled_host != host_name:
        raise Forbidden(
            f"this enrollment token is for {enrolled_host}, not {host_name}", code="enrollment-name-mismatch"
        )
    try:
        ek_cert = load_ek_certificate(ek_certificate)
    except EKCertificateError as exc:
        raise Invalid(
            f"ek_certificate cannot be loaded: {exc.message}",
            code="ek-certificate-malformed",
            details={"ekcert_code": exc.code},
        ) from None
    ek_area = _public_area(ek_public, "ek_public")
    aik_area = _public_area(aik_public, "aik_public")
    ek_key = _ek_key(ek_area)
    aik_name = check_aik(aik_area)

    def refuse(error: ServiceError) -> NoReturn:
        audit_refusal(
            session,
            error,
            "aik.challenge-refused",
            actor=actor,
            target=host_name,
            ek_certificate_sha256=ek_cert.fingerprint_sha256,
            aik_name=aik_name.hex(),
        )

    registered = registered_ek(session, ek_cert.fingerprint_sha256)
    if registered is not None and registered.revoked:
        refuse(
            Forbidden(
                f"the EK certificate's registration {registered.id} is revoked: this TPM may not enroll "
                "(PUT /hvs/v2/tpm-endorsements/<id> with revoked=false restores it)",
                code="ek-revoked",
                details={"tpm_endorsement_id": registered.id},
            )
        )
    if registered is None and services.config.require_ek_registration:
        refuse(
            Forbidden(
                f"the EK certificate (SHA-256 {ek_cert.fingerprint_sha256}) is not registered, and this central "
                "accepts registered EKs only: POST it to /hvs/v2/tpm-endorsements first",
                code="ek-not-registered",
                details={"certificate": ek_cert.to_dict()},
            )
        )
    anchors = [ca.certificate for ca in trusted_cas(session, services)]
    try:
        chain = verify_ek_certificate(ek_cert, EKTrustStore(tuple(anchors)), intermediates=anchors)
        trust = f"vendor CA {chain.trust_anchor.subject}"
    except EKCertificateError as exc:
        if registered is None:
            refuse(
                Forbidden(
                    f"the EK certificate is not trusted: {exc.message}; trust its vendor CA (POST "
                    "/hvs/v2/endorsement-cas) or register this EK (POST /hvs/v2/tpm-endorsements)",
                    code="ek-certificate-untrusted",
                    details={"ekcert_code": exc.code, "certificate": ek_cert.to_dict()},
                )
            )
        trust = f"registered EK {registered.id}"
    try:
        cert_key = _spki(ek_cert.public_key)
    except (ValueError, TypeError):
        cert_key = b""
    if not hmac.compare_digest(cert_key, ek_key):
        refuse(
            Forbidden("the EK certificate certifies another key than ek_public", code="ek-public-mismatch")
        )

    secret = secrets.token_bytes(SECRET_BYTES)
    try:
        blob, encrypted = make_credential(ek_area, secret, TPM2B_NAME(aik_name))
    except Exception as exc:  # an EK whose symmetric or hash parameters tpm2-pytss cannot use
        raise Invalid(f"cannot make a credential for this EK: {exc}", code="ek-not-acceptable") from None
    now = utcnow()
    prune_challenges(session, now)
    row = AIKChallenge(
        secret_sha256=hashlib.sha256(secret).hexdigest(),
        aik_public=aik_area.marshal(),
        aik_name=aik_name.hex(),
        ek_certificate_sha256=ek_cert.fingerprint_sha256,
        host_name=host_name,
        requested_by=actor,
        created_at=now,
        expires_at=now + CHALLENGE_TTL,
        used=False,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "aik.challenge-issued",
        actor=actor,
        outcome="success",
        target=host_name[:255],
        challenge_id=row.id,
        aik_name=row.aik_name,
        ek_certificate_sha256=ek_cert.fingerprint_sha256,
        trust_anchor=trust,
    )
    session.commit()
    return IssuedChallenge(row, blob.marshal(), encrypted.marshal())


# --- identity challenge response ----------------------------------------------------------------------------


def redeem_challenge(
    session: Session, services: CentralServices, *, challenge_id: str, secret: bytes, actor: str
) -> x509.Certificate:
    """Check the activated secret and certify the challenge's AIK; a challenge is redeemed at most once."""
    row = session.get(AIKChallenge, challenge_id)
    if row is None:
        raise NotFound(f"no identity challenge {challenge_id}", code="challenge-not-found")
    target, context = row.host_name, {"challenge_id": row.id, "aik_name": row.aik_name}
    now = utcnow()
    if row.used:
        audit_refusal(
            session,
            Conflict("this identity challenge was already answered", code="challenge-used"),
            "aik.challenge-failed",
            actor=actor,
            target=target,
            **context,
        )
    if row.expires_at <= now:
        audit_refusal(
            session,
            Forbidden(
                f"this identity challenge expired at {row.expires_at.isoformat()}", code="challenge-expired"
            ),
            "aik.challenge-failed",
            actor=actor,
            target=target,
            **context,
        )
    # Claim it before looking at the secret: one guess per challenge, on whichever instance answers.
    claimed = rowcount(
        session.execute(
            update(AIKChallenge)
            .where(AIKChallenge.id == row.id, AIKChallenge.used.is_(False), AIKChallenge.expires_at > now)
            .values(used=True)
            .execution_options(synchronize_session=False)
        )
    )
    session.commit()
    if claimed != 1:
        audit_refusal(
            session,
            Conflict("this identity challenge was already answered", code="challenge-used"),
            "aik.challenge-failed",
            actor=actor,
            target=target,
            **context,
        )
    if not hmac.compare_digest(hashlib.sha256(secret).hexdigest(), row.secret_sha256):
        audit_refusal(
            session,
            Forbidden(
                "the secret does not match the challenge; the challenge is now void", code="challenge-failed"
            ),
            "aik.challenge-failed",
            actor=actor,
            target=target,
            **context,
        )
    aik_area = unmarshal_exact(TPM2B_PUBLIC, row.aik_public, "stored AIK")
    cert = issue_aik_certificate(
        services.keys.privacy_ca.issuer, aik_area, days=services.config.certificate_days
    )
    serial = format(cert.serial_number, "x")
    session.execute(
        update(AIKChallenge)
        .where(AIKChallenge.id == row.id)
        .values(certificate_serial=serial)
        .execution_options(synchronize_session=False)
    )
    audit.record(
        session,
        "aik.certified",
        actor=actor,
        outcome="success",
        target=target[:255],
        serial=serial,
        subject=cert.subject.rfc4514_string(),
        ek_certificate_sha256=row.ek_certificate_sha256,
        **context,
    )
    session.commit()
    return cert


def aik_subject(name: bytes) -> x509.Name:
    """``O=secl, OU=AIK, CN=<hex of the name's digest>`` (the name minus its 2-byte nameAlg)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "secl"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "AIK"),
            x509.NameAttribute(NameOID.COMMON_NAME, name[2:].hex()),
        ]
    )


def issue_aik_certificate(issuer: pki.Issuer, aik: TPM2B_PUBLIC, *, days: int) -> x509.Certificate:
    key = serialization.load_pem_public_key(aik.to_pem())
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    now = datetime.now(UTC)
    not_after = min(now + timedelta(days=days), issuer.certificate.not_valid_after_utc)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    issuer_key = issuer.key
    digest = (
        hashes.SHA384()
        if isinstance(issuer_key, ec.EllipticCurvePrivateKey) and issuer_key.curve.key_size >= 384
        else hashes.SHA256()
    )
    return (
        x509.CertificateBuilder()
        .subject_name(aik_subject(public_name(aik.publicArea)))
        .issuer_name(issuer.certificate.subject)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, digest)
    )
