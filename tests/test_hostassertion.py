"""Host assertions: a host signs in with its enrollment key; forged, foreign, stale or misused ones fail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from secl.core.hostassertion import (
    HostAssertionError,
    is_host_assertion,
    sign_host_assertion,
    verify_host_assertion,
)
from tests.tpmkeys import make_ca

AUDIENCE = "central.example.com"


def _host_certificate(
    ca, key, name="host1.example.com", *, usages=(ExtendedKeyUsageOID.CLIENT_AUTH,), days=30
):
    ca_cert, ca_key = ca
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=days))
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    return builder.sign(ca_key, hashes.SHA384())


def _expect(code: str, token: str, ca_cert: x509.Certificate, **kwargs) -> None:
    with pytest.raises(HostAssertionError) as raised:
        verify_host_assertion(token, ca_cert, audience=kwargs.pop("audience", AUDIENCE), **kwargs)
    assert raised.value.code == code, raised.value


@pytest.mark.parametrize(
    "key", [ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(65537, 2048)]
)
def test_a_host_signs_in_with_its_enrollment_key(key):
    ca = make_ca("central root CA")
    cert = _host_certificate(ca, key)
    token = sign_host_assertion(cert, key, audience=AUDIENCE)
    assert is_host_assertion(token)
    verified = verify_host_assertion(token, ca[0], audience=AUDIENCE)
    assert verified.host == "host1.example.com"
    assert verified.certificate == cert


def test_forged_foreign_stale_and_misused_assertions_are_refused():
    ca = make_ca("central root CA")
    key = ec.generate_private_key(ec.SECP384R1())
    cert = _host_certificate(ca, key)
    good = sign_host_assertion(cert, key, audience=AUDIENCE)
    _expect("host-assertion-audience", good, ca[0], audience="other-central")
    _expect("host-certificate-untrusted", good, make_ca("another CA")[0])
    # Signed by a key that is not the certificate's.
    stranger = ec.generate_private_key(ec.SECP384R1())
    _expect("host-assertion-signature", sign_host_assertion(cert, stranger, audience=AUDIENCE), ca[0])
    # Too old, or not yet valid.
    past = datetime.now(UTC) - timedelta(minutes=10)
    _expect("host-assertion-expired", sign_host_assertion(cert, key, audience=AUDIENCE, now=past), ca[0])
    # A certificate for servers only, or one that expired.
    server_only = _host_certificate(ca, key, usages=(ExtendedKeyUsageOID.SERVER_AUTH,))
    _expect("host-certificate-usage", sign_host_assertion(server_only, key, audience=AUDIENCE), ca[0])
    later = datetime.now(UTC) + timedelta(days=40)
    _expect(
        "host-certificate-expired",
        sign_host_assertion(cert, key, audience=AUDIENCE, now=later),
        ca[0],
        now=later,
    )
    # Claims that say another host, or live too long, even when correctly signed.
    header = {k: v for k, v in jwt.get_unverified_header(good).items() if k != "alg"}
    claims = jwt.decode(good, options={"verify_signature": False})
    other = jwt.encode({**claims, "sub": "host2.example.com"}, key, algorithm="ES384", headers=header)
    _expect("host-assertion-subject", other, ca[0])
    long = jwt.encode({**claims, "exp": claims["iat"] + 3600}, key, algorithm="ES384", headers=header)
    _expect("host-assertion-lifetime", long, ca[0])
    # An algorithm that does not fit the key (HMAC with the public key, or none).
    _expect(
        "host-assertion-algorithm-rejected",
        jwt.encode(claims, "an HMAC secret of at least 32 octets", algorithm="HS256", headers=header),
        ca[0],
    )
    unsigned = jwt.encode(claims, None, algorithm="none", headers=header)
    _expect("host-assertion-algorithm-rejected", unsigned, ca[0])
    _expect("host-assertion-malformed", "not.a.jwt", ca[0])
    _expect("host-assertion-malformed", jwt.encode(claims, key, algorithm="ES384"), ca[0])
    assert not is_host_assertion("garbage")
    # The good one still verifies: each refusal had its own cause.
    assert verify_host_assertion(good, ca[0], audience=AUDIENCE).host == "host1.example.com"
