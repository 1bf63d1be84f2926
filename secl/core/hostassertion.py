"""A host proving who it is to the central with the TLS key it got at enrollment, not with a password.

A host part (the workload agent) signs a short-lived JWT with the private key of its enrollment
certificate and sends it as a bearer token; the certificate rides in the ``x5c`` header. It is the
``private_key_jwt`` idea of RFC 7523, with the central's own CA as the only trust anchor:

- header ``{"alg", "typ": "secl-host+jwt", "x5c": [<the host certificate, base64 DER>]}``;
- claims ``iss`` = ``sub`` = the host name (the certificate's CN), ``aud`` = the central's host name,
  ``iat``, ``exp`` (at most :data:`MAX_LIFETIME` seconds later), ``jti``.

:func:`verify_host_assertion` checks the certificate against the CA (issued by it, valid now, for client
authentication, naming the host), the signature under the certificate's key with an algorithm that fits
that key, and the claims. Whether the certificate is still one the central issued and did not revoke is
the central's to check; this module does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secl.core.errors import EvidenceError

TOKEN_TYPE = "secl-host+jwt"
MAX_LIFETIME = 300
LEEWAY = 30
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_RSA_ALGORITHM = "PS256"


class HostAssertionError(EvidenceError):
    """A host assertion is malformed, forged, expired, or names a certificate the CA did not issue."""

    code = "host-assertion-invalid"


@dataclass(frozen=True, slots=True)
class HostAssertion:
    """A verified assertion: the host it speaks for and the certificate that vouched for it."""

    host: str
    certificate: x509.Certificate
    token_id: str
    expires_at: int


def _algorithm_for(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        algorithm = _EC_ALGORITHMS.get(key.curve.name)
        if algorithm:
            return algorithm
    elif isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) and key.key_size >= 2048:
        return _RSA_ALGORITHM
    raise HostAssertionError(
        "a host key must be EC (P-256, P-384, P-521) or RSA of at least 2048 bits",
        code="host-key-unsupported",
    )


def sign_host_assertion(
    certificate: x509.Certificate,
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    *,
    audience: str,
    lifetime: int = 120,
    now: datetime | None = None,
) -> str:
    """A bearer token for the central at ``audience``, signed with the host's enrollment key."""
    if not 0 < lifetime <= MAX_LIFETIME:
        raise HostAssertionError(f"lifetime must be 1..{MAX_LIFETIME} s", code="host-assertion-lifetime")
    host = _common_name(certificate)
    issued = int((now or datetime.now(UTC)).timestamp())
    claims = {
        "iss": host,
        "sub": host,
        "aud": audience,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
    }
    headers = {"typ": TOKEN_TYPE, "x5c": [base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()]}
    return jwt.encode(claims, private_key, algorithm=_algorithm_for(private_key), headers=headers)


def is_host_assertion(token: str) -> bool:
    """Whether a bearer token claims to be a host assertion (by its ``typ``), without verifying anything."""
    try:
        return jwt.get_unverified_header(token).get("typ") == TOKEN_TYPE
    except jwt.PyJWTError:
        return False


def verify_host_assertion(
    token: str, certificate_authority: x509.Certificate, *, audience: str, now: datetime | None = None
) -> HostAssertion:
    """Verify a host assertion against the central's CA; raise :class:`HostAssertionError` otherwise."""
    now = now or datetime.now(UTC)
    certificate, header = _presented_certificate(token)
    _require_issued_by(certificate, certificate_authority, now)
    host = _common_name(certificate)
    algorithm = _algorithm_for(certificate.public_key())
    if header.get("alg") != algorithm:
        raise HostAssertionError(
            f"algorithm {header.get('alg')!r} does not fit the host's key ({algorithm})",
            code="host-assertion-algorithm-rejected",
        )
    try:
        claims = jwt.decode(
            token,
            certificate.public_key(),  # type: ignore[arg-type]
            algorithms=[algorithm],
            audience=audience,
            options={
                "require": ["iss", "sub", "aud", "iat", "exp", "jti"],
                "verify_exp": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidAudienceError:
        raise HostAssertionError(
            f"the assertion is for another central, not {audience}", code="host-assertion-audience"
        ) from None
    except jwt.InvalidSignatureError:
        raise HostAssertionError(
            "the assertion's signature does not verify", code="host-assertion-signature"
        ) from None
    except jwt.PyJWTError as exc:
        raise HostAssertionError(
            f"malformed host assertion: {exc}", code="host-assertion-malformed"
        ) from None
    if claims["sub"] != host or claims["iss"] != host:
        raise HostAssertionError(
            f"the assertion speaks for {claims['sub']!r} but the certificate is {host!r}'s",
            code="host-assertion-subject",
        )
    issued, expires, at = claims["iat"], claims["exp"], int(now.timestamp())
    if (
        not isinstance(issued, int)
        or not isinstance(expires, int)
        or not 0 < expires - issued <= MAX_LIFETIME
    ):
        raise HostAssertionError(
            f"a host assertion lives at most {MAX_LIFETIME} s", code="host-assertion-lifetime"
        )
    if issued > at + LEEWAY or expires < at - LEEWAY:
        raise HostAssertionError(
            "the host assertion has expired or is not valid yet", code="host-assertion-expired"
        )
    return HostAssertion(host, certificate, str(claims["jti"]), expires)


def _presented_certificate(token: str) -> tuple[x509.Certificate, dict]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise HostAssertionError(f"not a JWT: {exc}", code="host-assertion-malformed") from None
    if header.get("typ") != TOKEN_TYPE:
        raise HostAssertionError(
            f"not a host assertion (typ {header.get('typ')!r})", code="host-assertion-malformed"
        )
    chain = header.get("x5c")
    if not isinstance(chain, list) or len(chain) != 1 or not isinstance(chain[0], str):
        raise HostAssertionError(
            "the x5c header must hold exactly the host's certificate", code="host-assertion-malformed"
        )
    try:
        return x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True)), header
    except (binascii.Error, ValueError):
        raise HostAssertionError(
            "the x5c certificate cannot be read", code="host-assertion-malformed"
        ) from None


def _require_issued_by(certificate: x509.Certificate, authority: x509.Certificate, now: datetime) -> None:
    try:
        certificate.verify_directly_issued_by(authority)
    except (InvalidSignature, ValueError, TypeError):
        raise HostAssertionError(
            "the host certificate was not issued by this central's CA", code="host-certificate-untrusted"
        ) from None
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise HostAssertionError(
            f"the host certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}: enroll the host again",
            code="host-certificate-expired",
        )
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is None or ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise HostAssertionError(
            "the host certificate is not for client authentication", code="host-certificate-usage"
        )


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not str(names[0].value):
        raise HostAssertionError("the host certificate must name one host (CN)", code="host-certificate-name")
    return str(names[0].value)
