"""CMS operations: the CA bundle, CSR signing for enrolled hosts, and the register of issued certificates.

Views call these. CSR signing is authorized by an enrollment token, not a user JWT; every refusal is
written to the audit log (``enrollment.refused`` with the reason) and raised as a ServiceError. The token
value itself is never logged or stored.
"""

from __future__ import annotations

from typing import NoReturn

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.cms import enrollment, pki
from secl.central.errors import Forbidden, Invalid, ServiceError, Unauthorized
from secl.central.store.models import EnrollmentToken, IssuedCertificate

_EC_CURVES = ("secp256r1", "secp384r1")
_RSA_BITS = (2048, 8192)


def ca_certificates(issuer: pki.Issuer) -> list[x509.Certificate]:
    """What a client of this central trusts: the root CA (hosts pin its SHA-384 fingerprint)."""
    return [issuer.certificate]


def pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def _refuse(
    session: Session, error: ServiceError, reason: str, token: EnrollmentToken | None = None
) -> NoReturn:
    # Read before the rollback, which expires the token (and another instance may have deleted it).
    actor, host = (f"enrollment-token:{token.id}", token.host) if token else ("-", "")
    session.rollback()
    audit.record(
        session,
        "enrollment.refused",
        actor=actor,
        outcome="failure",
        target=host,
        reason=reason,
        code=error.code,
    )
    session.commit()
    raise error


def authenticate_enrollment(session: Session, header: str | None) -> EnrollmentToken:
    """The enrollment token of ``Authorization: Bearer <token>``, if it exists, is current and has uses left."""
    if not header:
        _refuse(
            session,
            Unauthorized(
                "this operation needs an enrollment token (secl-central create-enrollment-token) as "
                "'Authorization: Bearer <token>'",
                code="enrollment-token-missing",
            ),
            "no token",
        )
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        _refuse(
            session,
            Unauthorized(
                "the Authorization header must be 'Bearer <enrollment token>'",
                code="enrollment-token-malformed",
            ),
            "malformed header",
        )
    token = enrollment.find(session, presented.strip())
    if token is None:
        _refuse(
            session,
            Unauthorized(
                "the enrollment token is not known to this central", code="enrollment-token-unknown"
            ),
            "unknown token",
        )
    current = enrollment.state(token)
    if current == "expired":
        _refuse(
            session,
            Unauthorized(
                f"the enrollment token expired at {token.expires_at.isoformat()}",
                code="enrollment-token-expired",
            ),
            "token expired",
            token,
        )
    if current == "used-up":
        _used_up(session, token)
    return token


def _used_up(session: Session, token: EnrollmentToken) -> NoReturn:
    _refuse(
        session,
        Unauthorized("the enrollment token has been used up", code="enrollment-token-used-up"),
        "token used up",
        token,
    )


def _csr_invalid(
    session: Session, token: EnrollmentToken, message: str, code: str = "csr-invalid"
) -> NoReturn:
    _refuse(session, Invalid(message, code=code), message, token)


def parse_csr(session: Session, token: EnrollmentToken, text: str) -> x509.CertificateSigningRequest:
    """A PEM CSR whose key is acceptable and whose self-signature verifies (proof of key possession)."""
    try:
        csr = x509.load_pem_x509_csr(text.encode())
        key = csr.public_key()
        signed = csr.is_signature_valid
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        _csr_invalid(session, token, f"the CSR is not a valid PEM certificate signing request: {exc}")
    if isinstance(key, ec.EllipticCurvePublicKey):
        acceptable = key.curve.name in _EC_CURVES
    elif isinstance(key, rsa.RSAPublicKey):
        acceptable = _RSA_BITS[0] <= key.key_size <= _RSA_BITS[1]
    else:
        acceptable = False
    if not acceptable:
        _csr_invalid(
            session,
            token,
            "the CSR's key must be EC P-256 or P-384, or RSA of 2048 to 8192 bits",
            code="csr-key-unacceptable",
        )
    if not signed:
        _csr_invalid(session, token, "the CSR's self-signature does not verify")
    return csr


def _requested_names(csr: x509.CertificateSigningRequest) -> tuple[list[str], list[str]]:
    """(common names, subject alternative names) of a CSR, normalized; unusable names stay as they are."""

    def norm(name: str) -> str:
        try:
            return enrollment.normalize_host(name)
        except ValueError:
            return name

    cns = [norm(str(a.value)) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return cns, []
    sans = []
    for name in san:
        if isinstance(name, x509.DNSName | x509.IPAddress):
            sans.append(norm(str(name.value)))
        else:
            sans.append(f"{type(name).__name__}:{name.value!r}")  # never the host: always refused
    return cns, sans


def check_request(
    session: Session, token: EnrollmentToken, csr: x509.CertificateSigningRequest, kind: str
) -> None:
    try:
        cns, sans = _requested_names(csr)
    except ValueError as exc:  # a malformed extension surfaces only when read
        _csr_invalid(session, token, f"the CSR's extensions cannot be read: {exc}")
    if cns != [token.host] or any(name != token.host for name in sans):
        _refuse(
            session,
            Forbidden(
                f"this enrollment token is for {token.host}: the CSR must have exactly that common name and no "
                f"other subject alternative name (it asks for CN {cns}, SAN {sans})",
                code="enrollment-name-mismatch",
            ),
            f"names not allowed: CN {cns}, SAN {sans}",
            token,
        )
    if not enrollment.kind_allowed(token.kinds, kind):
        _refuse(
            session,
            Forbidden(
                f"this enrollment token allows {', '.join(token.kinds)} certificates, not {kind}",
                code="enrollment-kind-not-allowed",
            ),
            f"kind {kind} not allowed",
            token,
        )


def issue_certificate(
    session: Session, issuer: pki.Issuer, token: EnrollmentToken, csr_pem: str, *, kind: str, days: int
) -> x509.Certificate:
    """Sign a CSR for the token's host; the token was checked by :func:`authenticate_enrollment`."""
    csr = parse_csr(session, token, csr_pem)
    check_request(session, token, csr, kind)
    if not enrollment.claim_use(session, token.id):  # another request took the last use meanwhile
        _used_up(session, token)
    cert = pki.sign_csr(issuer, csr, common_name=token.host, kind=kind, days=days)
    serial, fingerprint = format(cert.serial_number, "x"), pki.fingerprint_sha384(cert)
    session.add(
        IssuedCertificate(
            serial=serial,
            subject=cert.subject.rfc4514_string(),
            kind=kind,
            fingerprint_sha384=fingerprint,
            not_after=cert.not_valid_after_utc,
            enrollment_token_id=token.id,
        )
    )
    audit.record(
        session,
        "certificate.issued",
        actor=f"enrollment-token:{token.id}",
        outcome="success",
        target=token.host,
        serial=serial,
        kind=kind,
        fingerprint_sha384=fingerprint,
    )
    session.commit()
    return cert


def search_certificates(session: Session, *, kind: str | None, limit: int) -> list[IssuedCertificate]:
    query = select(IssuedCertificate).order_by(IssuedCertificate.issued_at.desc()).limit(limit)
    if kind:
        query = query.where(IssuedCertificate.kind == kind)
    return list(session.scalars(query))
