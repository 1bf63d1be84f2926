"""Joining a central: pin its CA, pin its TLS key as the one client, get a TLS certificate for this host.

Trust starts from one value the operator copies from the central (``secl-central setup`` prints it): the
SHA-384 fingerprint of the central's root CA. :func:`pin_central_ca` fetches the CA without TLS
verification and accepts it only with that fingerprint; every later call to the central is verified
against the pinned file. :func:`pin_central_client` pins the central's own TLS key, since every enrolled
host holds a certificate from the same CA and chaining to it does not tell the central from another host.
:func:`obtain_tls_certificate` has the central's CMS sign this host's key with an enrollment token.

The functions raise :class:`EnrollmentError` for what the central or its answer got wrong, and let
``requests.RequestException`` through when the central cannot be reached (the caller names the central it
tried). What was done is returned, never printed: the daemon's command line reports it.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from secl.host.statefiles import StateFiles, write_state_file

__all__ = [
    "EnrollmentError",
    "PinnedCA",
    "client_key_sha256",
    "obtain_tls_certificate",
    "pin_central_ca",
    "pin_central_client",
    "tls_certificate_current",
]

_TIMEOUT = 30
_RENEW_BEFORE = timedelta(days=7)


class EnrollmentError(Exception):
    """The central refused, or answered something this host must not accept; the message says which."""


@dataclass(frozen=True, slots=True)
class PinnedCA:
    """The central's root CA and whether it was pinned by an earlier setup (``already``)."""

    certificate: x509.Certificate
    already: bool


def _fingerprint(cert: x509.Certificate) -> str:
    """SHA-384 (hex) of the certificate's DER: how the operator names the central's CA."""
    return cert.fingerprint(hashes.SHA384()).hex()


def client_key_sha256(der: bytes | None) -> str:
    """SHA-256 (hex) of a certificate's SubjectPublicKeyInfo; "" when there is no certificate."""
    if not der:
        return ""
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return hashlib.sha256(spki).hexdigest()


def _central_error(response: requests.Response) -> str:
    """The central's refusal in one line: status, and its ``{"code", "message"}`` when it sent one."""
    try:
        body = response.json()
        return f"HTTP {response.status_code} [{body.get('code')}]: {body.get('message')}"
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"


def pin_central_ca(central_url: str, sha384: str, state: StateFiles, force: bool) -> PinnedCA:
    """The central's root CA, fetched without verification and accepted only with this SHA-384."""
    if state.central_ca.is_file() and not force:
        pinned = x509.load_pem_x509_certificate(state.central_ca.read_bytes())
        if not hmac.compare_digest(_fingerprint(pinned), sha384):
            raise EnrollmentError(
                f"{state.central_ca} pins another CA (SHA-384 {_fingerprint(pinned)}); use --force to re-pin"
            )
        return PinnedCA(pinned, already=True)
    with warnings.catch_warnings():  # trust comes from the fingerprint, not from TLS, for this one call
        warnings.simplefilter("ignore")
        response = requests.get(
            f"{central_url}/cms/v1/ca-certificates", headers={"Accept": "application/json"},
            verify=False, timeout=_TIMEOUT,
        )  # fmt: skip
    if response.status_code != 200:
        raise EnrollmentError(f"cannot fetch the central's CA: {_central_error(response)}")
    try:
        ca = x509.load_pem_x509_certificate(response.json()["pem"].encode())
    except (ValueError, KeyError, TypeError) as exc:
        raise EnrollmentError(f"the central's CA answer is not a PEM certificate: {exc}") from None
    if not hmac.compare_digest(_fingerprint(ca), sha384):
        raise EnrollmentError(
            f"the central's CA has SHA-384 fingerprint {_fingerprint(ca)}, not {sha384}: not pinned"
        )
    write_state_file(state.central_ca, ca.public_bytes(serialization.Encoding.PEM))
    return PinnedCA(ca, already=False)


def pin_central_client(central_url: str, state: StateFiles, ca: x509.Certificate) -> None:
    """Pin the central's TLS key: the agent answers that client only (its certificate, issued by the pinned
    CA, is what the central presents when it connects). Re-pinned on every setup."""
    url = urlsplit(central_url)
    try:
        pem = ssl.get_server_certificate((url.hostname or "", url.port or 443), timeout=_TIMEOUT)
        cert = x509.load_pem_x509_certificate(pem.encode())
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature) as exc:
        raise EnrollmentError(
            f"the central at {central_url} does not present a certificate from its pinned CA: {exc}"
        ) from None
    write_state_file(
        state.central_client,
        (client_key_sha256(cert.public_bytes(serialization.Encoding.DER)) + "\n").encode(),
    )


def tls_certificate_current(state: StateFiles, ca: x509.Certificate, host: str) -> bool:
    """Whether the stored TLS key and certificate are for ``host``, from ``ca``, and not about to expire."""
    try:
        cert = x509.load_pem_x509_certificate(state.tls_cert.read_bytes())
        key = serialization.load_pem_private_key(state.tls_key.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return (
        names == [host]
        and cert.public_key() == key.public_key()
        and cert.not_valid_after_utc - _RENEW_BEFORE > datetime.now(UTC)
    )


def obtain_tls_certificate(
    *, central_url: str, token: str | None, host: str, state: StateFiles, ca: x509.Certificate, force: bool
) -> x509.Certificate | None:
    """A key pair and a certificate for ``host`` from the central's CMS: the new certificate, or None when
    the stored one is still current (idempotent without ``force``)."""
    if not force and tls_certificate_current(state, ca, host):
        return None
    if not token:
        raise EnrollmentError("--token (an enrollment token for this host) is needed for the TLS certificate")
    key = ec.generate_private_key(ec.SECP384R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .sign(key, hashes.SHA384())
    )
    response = requests.post(
        f"{central_url}/cms/v1/certificates",
        json={"csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "kind": "tls"},
        headers={"Authorization": f"Bearer {token}"}, verify=state.central_ca, timeout=_TIMEOUT,
    )  # fmt: skip
    if response.status_code != 201:
        raise EnrollmentError(f"the central refused the TLS certificate: {_central_error(response)}")
    cert = x509.load_pem_x509_certificate(response.json()["certificate"].encode())
    cert.verify_directly_issued_by(ca)
    if cert.public_key() != key.public_key():
        raise EnrollmentError("the central returned a certificate for another key")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_state_file(state.tls_key, key_pem, 0o600)
    write_state_file(state.tls_cert, cert.public_bytes(serialization.Encoding.PEM))
    return cert
