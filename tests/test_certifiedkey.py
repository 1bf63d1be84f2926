"""Certified host keys (binding and signing) and TPM key wrapping, on a real swtpm.

Keys are made and certified by the TPM itself (TPM2_CreatePrimary, TPM2_Certify with the AIK), then checked
by secl.core.certifiedkey; every refusal is provoked with a real TPM object of the wrong kind (an imported
software key, a signing key, an ECC key) or by tampering with what the TPM produced.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from tpm2_pytss.constants import ESYS_TR, TPMA_OBJECT
from tpm2_pytss.types import (
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE,
)

from secl.core.certifiedkey import (
    CERTIFY_INFO_OID,
    CERTIFY_SIGNATURE_OID,
    CertifiedKeyError,
    KeyCertificationRequest,
    KeyUsage,
    build_certified_key_certificate,
    name_digest_matches,
    read_certified_key_certificate,
    verify_certified_key,
    verify_certified_key_certificate,
)
from secl.core.keywrap import KeyWrapError, max_wrappable_bytes, unwrap_key, wrap_key
from secl.core.tpm import load_ak_public
from secl.host.certifiedkeys import certification_request, register_key_info
from secl.host.tpm import TPMAdapter, TPMError, TPMKey
from tests.tpmkeys import TPM_BOUND, USER_AUTH, decrypt_in_tpm, primary_key

_TPM_BOUND = TPM_BOUND
_AUTH = USER_AUTH


@pytest.fixture
def tpm(swtpm_tcti: str) -> Iterator[TPMAdapter]:
    with TPMAdapter(swtpm_tcti) as adapter:
        yield adapter


def _expect(code: str, request: KeyCertificationRequest, usage: KeyUsage, ak: TPMKey) -> CertifiedKeyError:
    with pytest.raises(CertifiedKeyError) as raised:
        verify_certified_key(request, usage, load_ak_public(ak.public))
    assert raised.value.code == code, raised.value.message
    return raised.value


@pytest.mark.swtpm
def test_a_tpm_binding_key_is_certified_and_a_wrapped_key_opens_only_in_that_tpm(tpm: TPMAdapter):
    ak = tpm.create_ak()
    binding = tpm.create_key("rsa")
    certified = verify_certified_key(
        certification_request(tpm, binding, ak), KeyUsage.BINDING, load_ak_public(ak.public)
    )
    assert certified.name == binding.name
    assert certified.key_bits == 2048
    assert certified.attributes & int(_TPM_BOUND) == int(_TPM_BOUND)
    secret = os.urandom(32)
    wrapped = wrap_key(certified.public_key, secret)
    assert decrypt_in_tpm(tpm, binding, wrapped) == secret
    # The label is part of the scheme: the same ciphertext does not open with another.
    with pytest.raises(TPMError):
        decrypt_in_tpm(tpm, binding, wrapped, b"other\x00")


@pytest.mark.swtpm
def test_a_signing_key_is_certified_as_signing_and_refused_as_binding(tpm: TPMAdapter):
    ak = tpm.create_ak()
    signing = primary_key(tpm, "rsa2048:rsassa-sha256:null", _TPM_BOUND | _AUTH | TPMA_OBJECT.SIGN_ENCRYPT)
    request = certification_request(tpm, signing, ak)
    assert (
        verify_certified_key(request, KeyUsage.SIGNING, load_ak_public(ak.public)).usage is KeyUsage.SIGNING
    )
    error = _expect("key-attributes-invalid", request, KeyUsage.BINDING, ak)
    assert "decrypt" in error.message and "sign" in error.message
    binding = tpm.create_key("rsa")
    _expect("key-attributes-invalid", certification_request(tpm, binding, ak), KeyUsage.SIGNING, ak)


@pytest.mark.swtpm
def test_a_software_key_loaded_into_the_tpm_is_not_tpm_bound(tpm: TPMAdapter):
    """A key created outside the TPM and loaded into it: the TPM certifies it, the central must not."""
    ak = tpm.create_ak()
    software = rsa.generate_private_key(65537, 2048)
    pem = software.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = TPM2B_PUBLIC.from_pem(pem, objectAttributes=_AUTH | TPMA_OBJECT.DECRYPT)
    handle = tpm._esapi.load_external(public, TPM2B_SENSITIVE.from_pem(pem), ESYS_TR.NULL)
    _, loaded_name, _ = tpm._esapi.read_public(handle)
    imported = TPMKey(handle, public.marshal(), bytes(loaded_name))
    error = _expect("key-not-tpm-bound", certification_request(tpm, imported, ak), KeyUsage.BINDING, ak)
    assert "fixedTPM" in error.message


@pytest.mark.swtpm
def test_small_and_ecc_keys_are_refused(tpm: TPMAdapter):
    ak = tpm.create_ak()
    small = primary_key(tpm, "rsa1024:null:null", _TPM_BOUND | _AUTH | TPMA_OBJECT.DECRYPT)
    _expect("key-too-small", certification_request(tpm, small, ak), KeyUsage.BINDING, ak)
    tpm.flush(small)
    ecc = primary_key(tpm, "ecc256:null:null", _TPM_BOUND | _AUTH | TPMA_OBJECT.DECRYPT)
    _expect("key-type-unsupported", certification_request(tpm, ecc, ak), KeyUsage.BINDING, ak)


@pytest.mark.swtpm
def test_tampered_or_mismatched_statements_are_refused_each_with_its_code(tpm: TPMAdapter):
    ak = tpm.create_ak()
    binding = tpm.create_key("rsa")
    request = certification_request(tpm, binding, ak)
    not_tpm = replace(request, certify_info=b"\x00" + request.certify_info[1:])
    _expect("certify-not-tpm-generated", not_tpm, KeyUsage.BINDING, ak)
    # A genuine TPM statement of another kind (a quote by the same AIK) is not a certification.
    quote = tpm.quote(ak, "sha256:0", b"")
    wrong_type = replace(request, certify_info=quote.attest, certify_signature=quote.signature)
    _expect("certify-wrong-type", wrong_type, KeyUsage.BINDING, ak)
    flipped = bytearray(request.certify_info)
    flipped[-1] ^= 1
    _expect("certify-signature-invalid", replace(request, certify_info=bytes(flipped)), KeyUsage.BINDING, ak)
    # Signed by another AIK (another TPM's, here another primary of this one).
    other_ak = primary_key(
        tpm,
        "rsa2048:rsassa-sha256:null",
        _TPM_BOUND | _AUTH | TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.SIGN_ENCRYPT,
        unique=b"other-ak",
    )
    by_other = certification_request(tpm, binding, other_ak)
    _expect("certify-signature-invalid", by_other, KeyUsage.BINDING, ak)
    # The statement is about one key, the public area sent is another's.
    tpm.flush(other_ak)
    second = tpm.create_key("rsa", unique=b"second")
    swapped = replace(request, public_area=second.public, name_digest=second.name)
    _expect("certify-name-mismatch", swapped, KeyUsage.BINDING, ak)
    _expect("name-digest-mismatch", replace(request, name_digest=second.name), KeyUsage.BINDING, ak)
    _expect("tpm-version-unsupported", replace(request, tpm_version="1.2"), KeyUsage.BINDING, ak)
    _expect(
        "operating-system-unsupported", replace(request, operating_system="windows"), KeyUsage.BINDING, ak
    )
    # The request as sent still verifies: each refusal above came from its own change.
    assert verify_certified_key(request, KeyUsage.BINDING, load_ak_public(ak.public)).name == binding.name


def test_name_digest_encodings():
    name = b"\x00\x0b" + bytes(range(32))
    assert name_digest_matches(name, name)
    assert name_digest_matches(b"\x00\x22" + name, name)  # TPM2B_NAME
    assert name_digest_matches(b"\x22\x00" + name + bytes(32), name)  # a C struct's memory
    assert name_digest_matches(b"\x22" + name + bytes(34), name)  # SecL's verifier's form
    assert not name_digest_matches(b"\x22" + name + b"\x01" + bytes(33), name)
    assert not name_digest_matches(name[:-1], name)
    assert not name_digest_matches(b"\x00\x0c" + bytes(range(32)), name)
    assert not name_digest_matches(b"", name)


def _issuer() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test Privacy CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA384())
    )
    return cert, key


@pytest.mark.swtpm
def test_the_key_certificate_carries_the_tpm_statement_and_a_key_broker_rechecks_it(tpm: TPMAdapter):
    ak = tpm.create_ak()
    aik = load_ak_public(ak.public)
    binding = tpm.create_key("rsa")
    certified = verify_certified_key(certification_request(tpm, binding, ak), KeyUsage.BINDING, aik)
    ca_cert, ca_key = _issuer()
    cert = build_certified_key_certificate(certified, ca_cert, ca_key, days=365)
    der = cert.public_bytes(Encoding.DER)
    assert cert.subject.rfc4514_string() == "CN=Binding_Key_Certificate"
    assert cert.not_valid_after_utc <= ca_cert.not_valid_after_utc
    read = read_certified_key_certificate(der)
    assert read.certify_info == certified.certify_info
    assert read.certify_signature == certified.certify_signature
    assert read.usage is KeyUsage.BINDING
    assert read_certified_key_certificate(cert.public_bytes(Encoding.PEM)).public_area == read.public_area
    again = verify_certified_key_certificate(read, KeyUsage.BINDING, aik)
    assert again.name == binding.name
    with pytest.raises(CertifiedKeyError) as wrong_usage:
        verify_certified_key_certificate(read, KeyUsage.SIGNING, aik)
    assert wrong_usage.value.code == "certificate-wrong-usage"
    other_ak = load_ak_public(tpm.create_ak("ecc").public)
    with pytest.raises(CertifiedKeyError) as other:
        verify_certified_key_certificate(read, KeyUsage.BINDING, other_ak)
    assert other.value.code == "certify-signature-invalid"
    # A certificate that puts another key beside the TPM's statement.
    stranger = rsa.generate_private_key(65537, 2048).public_key()
    forged = build_certified_key_certificate(replace(certified, public_key=stranger), ca_cert, ca_key, days=1)
    with pytest.raises(CertifiedKeyError) as mismatch:
        verify_certified_key_certificate(
            read_certified_key_certificate(forged.public_bytes(Encoding.DER)), KeyUsage.BINDING, aik
        )
    assert mismatch.value.code == "certificate-key-mismatch"
    # SecL's shape alone (no public area): the attributes cannot be re-checked, so it is refused.
    secl_shaped = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(ca_cert.subject)
        .public_key(certified.public_key)
        .serial_number(2)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .add_extension(x509.UnrecognizedExtension(CERTIFY_INFO_OID, certified.certify_info), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(CERTIFY_SIGNATURE_OID, certified.certify_signature), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )
    with pytest.raises(CertifiedKeyError) as missing:
        verify_certified_key_certificate(
            read_certified_key_certificate(secl_shaped.public_bytes(Encoding.DER)), KeyUsage.BINDING, aik
        )
    assert missing.value.code == "certificate-public-area-missing"
    with pytest.raises(CertifiedKeyError) as plain:
        read_certified_key_certificate(ca_cert.public_bytes(Encoding.DER))
    assert plain.value.code == "certificate-not-tpm-certified"
    with pytest.raises(CertifiedKeyError) as garbage:
        read_certified_key_certificate(b"\x30\x03\x02\x01\x00")
    assert garbage.value.code == "certificate-malformed"


def test_wrap_and_unwrap_in_software_and_the_size_limit():
    owner = rsa.generate_private_key(65537, 2048)
    key = os.urandom(32)
    assert unwrap_key(owner, wrap_key(owner.public_key(), key)) == key
    assert max_wrappable_bytes(owner.public_key()) == 190
    with pytest.raises(KeyWrapError) as big:
        wrap_key(owner.public_key(), bytes(191))
    assert big.value.code == "key-too-large-to-wrap"
    with pytest.raises(KeyWrapError) as wrong:
        unwrap_key(rsa.generate_private_key(65537, 2048), wrap_key(owner.public_key(), key))
    assert wrong.value.code == "key-unwrap-failed"
    # The label is part of the scheme: a wrap without it does not unwrap.
    unlabelled = owner.public_key().encrypt(
        key, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    )
    with pytest.raises(KeyWrapError):
        unwrap_key(owner, unlabelled)


@pytest.mark.swtpm
def test_the_host_side_makes_keys_the_central_certifies(tpm: TPMAdapter):
    """secl.host: the adapter's binding and signing keys pass the central's checks for their own usage only,
    and register_key_info is SecL's RegisterKeyInfo JSON of the request."""
    ak = tpm.create_ak()
    aik = load_ak_public(ak.public)
    signing = certification_request(tpm, tpm.create_signing_key(), ak, b"aik-der")
    assert verify_certified_key(signing, KeyUsage.SIGNING, aik).usage is KeyUsage.SIGNING
    _expect("key-attributes-invalid", signing, KeyUsage.BINDING, ak)
    body = register_key_info(signing)
    assert set(body) == {
        "public_key_modulus", "tpm_certify_key", "tpm_certify_key_signature", "aik_der_certificate",
        "name_digest", "tpm_version", "operating_system",
    }  # fmt: skip
    assert base64.b64decode(body["tpm_certify_key"]) == signing.certify_info
    assert base64.b64decode(body["aik_der_certificate"]) == b"aik-der"
    assert (body["tpm_version"], body["operating_system"]) == ("2.0", "linux")
