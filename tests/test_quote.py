"""Quote, certify and creation verification on corpus vectors (../shared/corpus, INDEX.md "Quotes").

Every vector must verify, and must stop verifying, with a QuoteError and never another exception, when any
byte of its attestation, signature, nonce or PCR values changes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from functools import cache

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tpm2_pytss.constants import TPM2_ALG, TPM2_GENERATED, TPM2_ST, TPMA_OBJECT
from tpm2_pytss.types import (
    TPM2B_DATA,
    TPM2B_DIGEST,
    TPM2B_ECC_PARAMETER,
    TPM2B_NAME,
    TPM2B_PUBLIC_KEY_RSA,
    TPML_PCR_SELECTION,
    TPMS_ATTEST,
    TPMS_CLOCK_INFO,
    TPMS_QUOTE_INFO,
    TPMS_SIGNATURE_ECC,
    TPMS_SIGNATURE_RSA,
    TPMT_ASYM_SCHEME,
    TPMT_PUBLIC,
    TPMT_SIGNATURE,
    TPMU_ATTEST,
    TPMU_SIGNATURE,
)

from secl.core.errors import CertifyError, EvidenceError, QuoteError, TPMStructureError
from secl.core.hashalg import HashAlg
from secl.core.pcrfile import dump_pcr_values_json, dump_pcr_values_tpm2_tools, load_pcr_values
from secl.core.quote import (
    secl_qualifying_data,
    unverified_quote_selection,
    verify_certify,
    verify_creation,
    verify_quote,
)
from secl.core.tpm import AKPublic, load_ak_public, unmarshal_attest, unmarshal_signature
from tests.corpus import corpus_bytes

KEYLIME = "keylime/test-data/files/"
ISECL = "intel-secl/pkg/lib/host-connector/test/sample_tpm_quote.xml"
ISECL_NONCE = base64.b64decode("EsJ0GRgwSvwn9u3ir9NhidLSKVX5oVn2UJKsH4heHuQ=")  # aik_quote_verifier_test.go
GCP = "go-attestation/attest/testdata/windows_gcp_shielded_vm.json"


@dataclass(frozen=True)
class Vector:
    ak: AKPublic
    attest: bytes
    signature: bytes
    nonce: bytes
    pcrs: dict[HashAlg, dict[int, bytes]]


def _keylime(ak_file: str) -> Vector:
    return Vector(
        load_ak_public(corpus_bytes(KEYLIME + ak_file)),
        corpus_bytes(KEYLIME + "quote.out"),
        corpus_bytes(KEYLIME + "quotesig.out"),
        corpus_bytes(KEYLIME + "rand.out"),
        load_pcr_values(corpus_bytes(KEYLIME + "quotepcr.out")),
    )


def _isecl() -> Vector:
    root = ET.fromstring(corpus_bytes(ISECL))
    blob = base64.b64decode(root.findtext("quote") or "")
    size = int.from_bytes(blob[:2], "big")  # TPM2B_ATTEST
    attest, rest = blob[2 : 2 + size], blob[2 + size :]
    _, sig_len = TPMT_SIGNATURE.unmarshal(rest)
    signature, values = rest[:sig_len], rest[sig_len:]
    selection = unverified_quote_selection(attest)
    return Vector(
        load_ak_public(base64.b64decode(root.findtext("aik") or "")),
        attest,
        signature,
        secl_qualifying_data(ISECL_NONCE),
        load_pcr_values(values, selection_hint=selection),
    )


def _gcp() -> Vector:
    doc = json.loads(corpus_bytes(GCP))
    b64 = base64.b64decode
    assert {p["DigestAlg"] for p in doc["Log"]["PCRs"]} == {3}  # Go's crypto.SHA1
    pcrs = {HashAlg.SHA1: {p["Index"]: b64(p["Digest"]) for p in doc["Log"]["PCRs"]}}
    quote = doc["Quote"]
    return Vector(
        load_ak_public(b64(doc["AK"]["Public"])), b64(quote["Quote"]), b64(quote["Signature"]), b"", pcrs
    )


VECTORS = {
    "keylime-tpm2b": lambda: _keylime("ak.pub"),
    "keylime-pem": lambda: _keylime("akpub.pem"),
    "intel-secl": _isecl,
    "go-attestation-gcp": _gcp,
}


@cache
def vector(name: str) -> Vector:
    return VECTORS[name]()


def _verify(v: Vector, **changes: object):
    v = replace(v, **changes)
    return verify_quote(v.ak, v.attest, v.signature, qualifying_data=v.nonce, pcrs=v.pcrs)


@pytest.mark.parametrize("name", VECTORS)
def test_corpus_quote_verifies(name: str) -> None:
    v = vector(name)
    result = _verify(v)
    assert result.extra_data == v.nonce
    assert result.pcrs is not None
    assert {bank: tuple(values) for bank, values in result.pcrs.values.items()} == dict(result.selection)
    assert json.loads(json.dumps(result.to_dict()))["pcr_digest"] == result.pcr_digest.hex()
    assert verify_quote(v.ak, v.attest, v.signature, qualifying_data=v.nonce).pcrs is None


def test_keylime_details() -> None:
    result = _verify(vector("keylime-tpm2b"))
    assert dict(result.selection) == {HashAlg.SHA256: (15, 16, 22)}
    assert result.signature_scheme == "rsassa" and result.signature_hash is HashAlg.SHA256
    assert vector("keylime-tpm2b").ak.name == corpus_bytes(KEYLIME + "ak.name")


def test_intel_secl_qualifying_data_is_sha256_of_nonce() -> None:
    assert dict(_verify(vector("intel-secl")).selection).keys() == {HashAlg.SHA256, HashAlg.SHA1}


@pytest.mark.parametrize("name", VECTORS)
@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_attest_byte_matters(name: str, mask: int) -> None:
    v = vector(name)
    for i in range(len(v.attest)):
        tampered = bytearray(v.attest)
        tampered[i] ^= mask
        with pytest.raises(QuoteError):
            _verify(v, attest=bytes(tampered))


@pytest.mark.parametrize("name", VECTORS)
@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_signature_byte_matters(name: str, mask: int) -> None:
    v = vector(name)
    for i in range(len(v.signature)):
        tampered = bytearray(v.signature)
        tampered[i] ^= mask
        with pytest.raises(QuoteError):
            _verify(v, signature=bytes(tampered))


@pytest.mark.parametrize("name", VECTORS)
def test_truncated_or_extended_input_is_malformed(name: str) -> None:
    v = vector(name)
    for field, code in (("attest", "quote-attest-malformed"), ("signature", "quote-signature-malformed")):
        data = getattr(v, field)
        for bad in (data + b"\0", data[:-1], b""):
            with pytest.raises(QuoteError) as err:
                _verify(v, **{field: bad})
            assert err.value.code == code


@pytest.mark.parametrize("name", VECTORS)
def test_every_nonce_byte_matters(name: str) -> None:
    v = vector(name)
    candidates = [v.nonce + b"\0", v.nonce[:-1]] + [
        v.nonce[:i] + bytes([v.nonce[i] ^ 1]) + v.nonce[i + 1 :] for i in range(len(v.nonce))
    ]
    for nonce in candidates:
        if nonce == v.nonce:
            continue
        with pytest.raises(QuoteError) as err:
            _verify(v, nonce=nonce)
        assert err.value.code == "quote-nonce-mismatch"


@pytest.mark.parametrize("name", VECTORS)
def test_every_pcr_value_matters(name: str) -> None:
    v = vector(name)
    for bank, values in v.pcrs.items():
        for index, value in values.items():
            for pos in (0, len(value) - 1):
                changed = bytearray(value)
                changed[pos] ^= 0x01
                pcrs = {b: dict(p) for b, p in v.pcrs.items()}
                pcrs[bank][index] = bytes(changed)
                with pytest.raises(QuoteError) as err:
                    _verify(v, pcrs=pcrs)
                assert err.value.code == "pcr-digest-mismatch"


@pytest.mark.parametrize("name", VECTORS)
def test_pcr_outside_signed_selection_is_rejected(name: str) -> None:
    v = vector(name)
    result = _verify(v)
    for bank in HashAlg:
        quoted = set(result.selection.get(bank, ()))
        unquoted = next((i for i in range(32) if i not in quoted), None)
        if unquoted is None:
            continue
        pcrs = {b: dict(p) for b, p in v.pcrs.items()}
        pcrs.setdefault(bank, {})[unquoted] = bytes(bank.digest_size)
        with pytest.raises(QuoteError) as err:
            _verify(v, pcrs=pcrs)
        assert err.value.code == "pcr-not-quoted"


@pytest.mark.parametrize("name", VECTORS)
def test_quoted_pcr_without_value_is_rejected(name: str) -> None:
    v = vector(name)
    pcrs = {b: dict(p) for b, p in v.pcrs.items()}
    bank = next(iter(pcrs))
    del pcrs[bank][min(pcrs[bank])]
    with pytest.raises(QuoteError) as err:
        _verify(v, pcrs=pcrs)
    assert err.value.code == "pcr-missing"


def test_wrong_ak_is_rejected() -> None:
    v = vector("keylime-tpm2b")
    with pytest.raises(QuoteError) as err:
        _verify(v, ak=vector("intel-secl").ak)
    assert err.value.code == "signature-invalid"


def test_fast_reader_matches_pytss_accessors() -> None:
    """secl.core.tpm reads tpm2-pytss's C structs for speed; pin it to the public attribute API."""
    for name in VECTORS:
        v = vector(name)
        info = unmarshal_attest(v.attest)
        slow = TPMS_ATTEST.unmarshal(v.attest)[0]
        clock = slow.clockInfo
        assert (info.magic, info.type, info.firmware_version) == (slow.magic, slow.type, slow.firmwareVersion)
        assert (info.clock, info.reset_count, info.restart_count) == (
            clock.clock,
            clock.resetCount,
            clock.restartCount,
        )
        assert info.extra_data == bytes(slow.extraData)
        assert info.qualified_signer == bytes(slow.qualifiedSigner)
        sel = slow.attested.quote.pcrSelect
        claimed = unverified_quote_selection(v.attest)
        assert [int(s.hash) for s in sel.pcrSelections[: sel.count]] == [int(b) for b, _ in claimed]
        assert _verify(v).pcr_digest == bytes(slow.attested.quote.pcrDigest)
        sig = unmarshal_signature(v.signature)
        assert sig.signature == bytes(TPMT_SIGNATURE.unmarshal(v.signature)[0])


# --- AK loading ---------------------------------------------------------------------------------------


def test_ak_loaders_agree() -> None:
    from_tpm2b = load_ak_public(corpus_bytes(KEYLIME + "ak.pub"))
    from_pem = load_ak_public(corpus_bytes(KEYLIME + "akpub.pem"))
    from_der = load_ak_public(_der(from_pem))
    assert from_tpm2b.pem() == from_pem.pem() == from_der.pem()
    assert from_tpm2b.public_area is not None
    assert load_ak_public(from_tpm2b.public_area).name == from_tpm2b.name  # bare TPMT_PUBLIC
    assert from_pem.name is None and from_pem.scheme is None


def _der(ak: AKPublic) -> bytes:
    return ak.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_ek_is_not_an_ak() -> None:
    with pytest.raises(TPMStructureError) as err:
        load_ak_public(corpus_bytes(KEYLIME + "ek.pub"))
    assert err.value.code == "ak-not-restricted-signing"


@pytest.mark.parametrize(
    "data", [b"", b"\x00", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", b"\x30"]
)
def test_bad_ak_encodings(data: bytes) -> None:
    with pytest.raises(TPMStructureError):
        load_ak_public(data)


# --- Software-signed quotes: the RSAPSS and ECDSA paths and the AK's fixed scheme ---------------------

_ATTRS = TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.SIGN_ENCRYPT | TPMA_OBJECT.FIXEDTPM | TPMA_OBJECT.FIXEDPARENT


def _soft_attest(nonce: bytes, pcrs: dict[int, bytes]) -> bytes:
    selection = TPML_PCR_SELECTION.parse("sha256:" + ",".join(map(str, sorted(pcrs))))
    digest = hashlib.sha256(b"".join(pcrs[i] for i in sorted(pcrs))).digest()
    return TPMS_ATTEST(
        magic=TPM2_GENERATED.VALUE,
        type=TPM2_ST.ATTEST_QUOTE,
        qualifiedSigner=TPM2B_NAME(b"\x00\x0b" + bytes(32)),
        extraData=TPM2B_DATA(nonce),
        clockInfo=TPMS_CLOCK_INFO(clock=1, resetCount=2, restartCount=3, safe=1),
        firmwareVersion=7,
        attested=TPMU_ATTEST(quote=TPMS_QUOTE_INFO(pcrSelect=selection, pcrDigest=TPM2B_DIGEST(digest))),
    ).marshal()


def _soft_sign(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, scheme: str, attest: bytes) -> bytes:
    if scheme == "ecdsa":
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(attest, ec.ECDSA(hashes.SHA256())))
        body = TPMS_SIGNATURE_ECC(
            hash=TPM2_ALG.SHA256,
            signatureR=TPM2B_ECC_PARAMETER(r.to_bytes(32, "big")),
            signatureS=TPM2B_ECC_PARAMETER(s.to_bytes(32, "big")),
        )
        return TPMT_SIGNATURE(sigAlg=TPM2_ALG.ECDSA, signature=TPMU_SIGNATURE(ecdsa=body)).marshal()
    assert isinstance(key, rsa.RSAPrivateKey)
    if scheme == "rsapss":
        pad: padding.AsymmetricPadding = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    else:
        pad = padding.PKCS1v15()
    raw = key.sign(attest, pad, hashes.SHA256())
    body_rsa = TPMS_SIGNATURE_RSA(hash=TPM2_ALG.SHA256, sig=TPM2B_PUBLIC_KEY_RSA(raw))
    alg = TPM2_ALG.RSAPSS if scheme == "rsapss" else TPM2_ALG.RSASSA
    return TPMT_SIGNATURE(sigAlg=alg, signature=TPMU_SIGNATURE(rsassa=body_rsa)).marshal()


def _soft_ak(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, fixed: str | None) -> AKPublic:
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if fixed is None:
        return load_ak_public(pem)
    scheme = TPMT_ASYM_SCHEME(scheme=getattr(TPM2_ALG, fixed.upper()))
    scheme.details.anySig.hashAlg = TPM2_ALG.SHA256
    return load_ak_public(TPMT_PUBLIC.from_pem(pem, objectAttributes=_ATTRS, scheme=scheme).marshal())


@cache
def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


@cache
def _ecc_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("scheme", "fixed"),
    [
        ("rsassa", None),
        ("rsassa", "rsassa"),
        ("rsapss", None),
        ("rsapss", "rsapss"),
        ("ecdsa", None),
        ("ecdsa", "ecdsa"),
    ],
)
def test_signature_schemes(scheme: str, fixed: str | None) -> None:
    key = _ecc_key() if scheme == "ecdsa" else _rsa_key()
    pcrs = {0: b"\x11" * 32, 7: b"\x22" * 32}
    attest = _soft_attest(b"n", pcrs)
    sig = _soft_sign(key, scheme, attest)
    result = verify_quote(
        _soft_ak(key, fixed), attest, sig, qualifying_data=b"n", pcrs={HashAlg.SHA256: pcrs}
    )
    assert result.signature_scheme == scheme
    assert (result.clock, result.reset_count, result.restart_count, result.safe) == (1, 2, 3, True)


def test_signature_must_use_the_aks_fixed_scheme() -> None:
    attest = _soft_attest(b"n", {0: bytes(32)})
    sig = _soft_sign(_rsa_key(), "rsapss", attest)
    with pytest.raises(QuoteError) as err:
        verify_quote(_soft_ak(_rsa_key(), "rsassa"), attest, sig, qualifying_data=b"n")
    assert err.value.code == "signature-scheme-mismatch"


def test_ecdsa_signature_with_rsa_ak() -> None:
    attest = _soft_attest(b"n", {0: bytes(32)})
    with pytest.raises(QuoteError) as err:
        verify_quote(
            _soft_ak(_rsa_key(), None), attest, _soft_sign(_ecc_key(), "ecdsa", attest), qualifying_data=b"n"
        )
    assert err.value.code == "signature-key-mismatch"


def test_signature_object_is_accepted() -> None:
    v = vector("keylime-tpm2b")
    sig = TPMT_SIGNATURE.unmarshal(v.signature)[0]
    assert verify_quote(v.ak, v.attest, sig, qualifying_data=v.nonce, pcrs=v.pcrs).pcrs is not None


# --- Certify and creation -----------------------------------------------------------------------------


def test_gcp_ak_creation_attestation() -> None:
    doc = json.loads(corpus_bytes(GCP))["AK"]
    ak = vector("go-attestation-gcp").ak
    att, sig, data = (
        base64.b64decode(doc[k]) for k in ("CreateAttestation", "CreateSignature", "CreateData")
    )
    result = verify_creation(ak, att, sig, creation_data=data)
    assert result.object_name == ak.name
    with pytest.raises(CertifyError) as err:
        verify_creation(ak, att, sig, object_name=vector("keylime-tpm2b").ak.name)
    assert err.value.code == "creation-name-mismatch"
    with pytest.raises(CertifyError) as err:
        verify_creation(ak, att, sig, creation_data=data[:8] + bytes([data[8] ^ 1]) + data[9:])
    assert err.value.code == "creation-hash-mismatch"


def test_quote_is_not_a_certification() -> None:
    v = vector("keylime-tpm2b")
    with pytest.raises(CertifyError) as err:
        verify_certify(v.ak, v.attest, v.signature, corpus_bytes(KEYLIME + "ak.pub"))
    assert err.value.code == "certify-wrong-type"


# --- PCR files ----------------------------------------------------------------------------------------


def test_keylime_pcr_file_is_tpm2_tools_serialized() -> None:
    pcrs = load_pcr_values(corpus_bytes(KEYLIME + "quotepcr.out"))
    assert {b: sorted(p) for b, p in pcrs.items()} == {HashAlg.SHA256: [15, 16, 22]}
    assert dump_pcr_values_tpm2_tools(pcrs) == corpus_bytes(KEYLIME + "quotepcr.out")


@pytest.mark.parametrize("name", VECTORS)
def test_pcr_file_round_trips(name: str) -> None:
    pcrs = vector(name).pcrs
    assert load_pcr_values(dump_pcr_values_tpm2_tools(pcrs)) == pcrs
    assert load_pcr_values(dump_pcr_values_json(pcrs)) == pcrs
    selection = unverified_quote_selection(vector(name).attest)
    values = b"".join(pcrs[bank][i] for bank, indices in selection for i in indices)
    assert load_pcr_values(values, selection_hint=selection) == pcrs


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[]",
        b'{"sha256": {"0": "00"}}',
        b'{"md5": {}}',
        b'{"sha256": {"x": ""}}',
        bytes(668),
        b"\x01" * 668,
    ],
)
def test_bad_pcr_files(data: bytes) -> None:
    with pytest.raises(QuoteError) as err:
        load_pcr_values(data)
    assert err.value.code == "pcr-file-malformed"


# --- Arbitrary input never escapes the error family ---------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attest=st.binary(max_size=400), signature=st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_evidence_errors(attest: bytes, signature: bytes) -> None:
    v = vector("keylime-tpm2b")
    with pytest.raises(EvidenceError):
        verify_quote(v.ak, attest, signature, qualifying_data=v.nonce, pcrs=v.pcrs)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_quotes_only_raise_evidence_errors(data: st.DataObject) -> None:
    v = vector(data.draw(st.sampled_from(sorted(VECTORS))))
    attest = bytearray(v.attest)
    for _ in range(data.draw(st.integers(1, 4))):
        attest[data.draw(st.integers(0, len(attest) - 1))] = data.draw(st.integers(0, 255))
    if bytes(attest) == v.attest:
        return
    with pytest.raises(QuoteError):
        _verify(v, attest=bytes(attest))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=1400), hint=st.booleans())
def test_arbitrary_pcr_files_only_raise_quote_errors(data: bytes, hint: bool) -> None:
    selection = unverified_quote_selection(vector("keylime-tpm2b").attest) if hint else None
    try:
        values = load_pcr_values(data, selection_hint=selection)
    except QuoteError as exc:  # any other exception fails the test
        assert exc.code and exc.message
    else:
        assert all(isinstance(v, bytes) for pcrs in values.values() for v in pcrs.values())
