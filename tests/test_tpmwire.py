"""The native TPM structure readers (secl.core.tpmwire) against tpm2-pytss, the oracle.

- Every public area of the corpus (keylime's AK and EK, go-attestation's GCP AK), AKs a real TPM (swtpm)
  makes, and 1,000 generated RSA and ECC public areas: the same type, nameAlg, attributes, policy,
  parameters, unique, marshalled bytes, TPM Name and key as tpm2-pytss reads.
- Every quote and signature of the corpus, and generated quotes: the same fields.
- Every truncation of all of them is refused with a named error that says where; the fast path and the
  field-by-field reader agree on everything either accepts.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tpm2_pytss.types import TPM2B_PUBLIC, TPMS_ATTEST, TPMT_PUBLIC, TPMT_SIGNATURE

from secl.core.errors import QuoteError, TPMStructureError
from secl.core.quote import verify_quote
from secl.core.tpm import load_ak_public, unmarshal_signature
from secl.core.tpmwire import (
    ALG_ECC,
    ALG_RSA,
    ECCParameters,
    ECCPoint,
    ObjectAttributes,
    QuoteInfo,
    RSAParameters,
    TPMPublic,
    _read_attest,
    _read_tpmt_public,
    _Reader,
    read_attest,
    read_public,
    read_public_area,
    read_signature,
)
from tests.corpus import corpus_bytes

KEYLIME = "keylime/test-data/files/"
GCP = "go-attestation/attest/testdata/windows_gcp_shielded_vm.json"
ISECL = "intel-secl/pkg/lib/host-connector/test/sample_tpm_quote.xml"


def _gcp() -> dict[str, Any]:
    return json.loads(corpus_bytes(GCP))


def _corpus_public_areas() -> dict[str, bytes]:
    return {
        "keylime AK (TPM2B_PUBLIC)": corpus_bytes(KEYLIME + "ak.pub"),
        "keylime EK (TPM2B_PUBLIC)": corpus_bytes(KEYLIME + "ek.pub"),
        "go-attestation GCP AK (TPMT_PUBLIC)": base64.b64decode(_gcp()["AK"]["Public"]),
    }


def _isecl_quote() -> tuple[bytes, bytes]:
    import xml.etree.ElementTree as ET

    blob = base64.b64decode(ET.fromstring(corpus_bytes(ISECL)).findtext("quote") or "")
    size = int.from_bytes(blob[:2], "big")
    attest, rest = blob[2 : 2 + size], blob[2 + size :]
    _, sig_len = TPMT_SIGNATURE.unmarshal(rest)
    return attest, rest[:sig_len]


def _corpus_quotes() -> dict[str, tuple[bytes, bytes]]:
    gcp = _gcp()["Quote"]
    return {
        "keylime": (corpus_bytes(KEYLIME + "quote.out"), corpus_bytes(KEYLIME + "quotesig.out")),
        "intel-secl": _isecl_quote(),
        "go-attestation GCP": (base64.b64decode(gcp["Quote"]), base64.b64decode(gcp["Signature"])),
        "go-attestation GCP creation": (
            base64.b64decode(_gcp()["AK"]["CreateAttestation"]),
            base64.b64decode(_gcp()["AK"]["CreateSignature"]),
        ),
    }


# --- the oracle ----------------------------------------------------------------------------------------


def _pytss_area(data: bytes) -> Any:
    # A TPM2B_PUBLIC's second word is the area's type; a TPMT_PUBLIC's is its nameAlg.
    if int.from_bytes(data[2:4], "big") in (ALG_RSA, ALG_ECC, 0x0008, 0x0025):
        public, used = TPM2B_PUBLIC.unmarshal(data)
        assert used == len(data)
        return public.publicArea
    area, used = TPMT_PUBLIC.unmarshal(data)
    assert used == len(data)
    return area


def _pytss_refuses(data: bytes) -> bool:
    """Whether tpm2-pytss refuses ``data`` as a public area: an error, or bytes left over."""
    cls = (
        TPM2B_PUBLIC
        if int.from_bytes(data[2:4], "big") in (ALG_RSA, ALG_ECC, 0x0008, 0x0025)
        else TPMT_PUBLIC
    )
    try:
        _, used = cls.unmarshal(data)
    except Exception:  # TSS2_Exception, or ValueError for a short buffer
        return True
    return used != len(data)


def assert_same_public(ours: TPMPublic, data: bytes) -> None:
    """Every field of our reading equals tpm2-pytss's reading of the same bytes."""
    theirs = _pytss_area(data)
    assert ours.type == int(theirs.type)
    assert ours.name_alg == int(theirs.nameAlg)
    assert ours.object_attributes == int(theirs.objectAttributes)
    assert ours.attributes == ObjectAttributes(int(theirs.objectAttributes))
    assert ours.auth_policy == bytes(theirs.authPolicy)
    assert ours.marshaled == theirs.marshal()
    params = ours.parameters
    if ours.type == ALG_RSA:
        detail = theirs.parameters.rsaDetail
        assert isinstance(params, RSAParameters) and ours.unique == bytes(theirs.unique.rsa)
        assert (params.key_bits, params.exponent) == (int(detail.keyBits), int(detail.exponent))
    else:
        detail = theirs.parameters.eccDetail
        assert isinstance(params, ECCParameters) and isinstance(ours.unique, ECCPoint)
        assert (ours.unique.x, ours.unique.y) == (bytes(theirs.unique.ecc.x), bytes(theirs.unique.ecc.y))
        assert params.curve == int(detail.curveID)
        assert params.kdf.scheme == int(detail.kdf.scheme)
        if params.kdf.hash_alg is not None:
            assert params.kdf.hash_alg == int(detail.kdf.details.mgf1.hashAlg)
    sym = detail.symmetric
    assert params.symmetric.algorithm == int(sym.algorithm)
    if params.symmetric.key_bits is not None:
        assert params.symmetric.key_bits == int(sym.keyBits.sym)
    if params.symmetric.mode is not None:
        assert params.symmetric.mode == int(sym.mode.sym)
    assert params.scheme.scheme == int(detail.scheme.scheme)
    if params.scheme.hash_alg is not None:
        assert params.scheme.hash_alg == int(detail.scheme.details.anySig.hashAlg)
    if params.scheme.count is not None:
        assert params.scheme.count == int(detail.scheme.details.ecdaa.count)
    if ours.name_alg in (0x0004, 0x000B, 0x000C, 0x000D):
        assert ours.name() == bytes(theirs.get_name())


def assert_every_truncation_is_named(data: bytes, reader: Any, *structures: str) -> None:
    for cut in range(len(data)):
        with pytest.raises(TPMStructureError) as err:
            reader(data[:cut])
        assert err.value.code in ("tpm-structure-truncated", "tpm-structure-malformed"), (cut, err.value)
        assert any(name in err.value.message for name in structures), err.value.message
        assert "mu:" not in err.value.message


# --- public areas: the corpus and a real TPM -----------------------------------------------------------


@pytest.mark.parametrize("name", list(_corpus_public_areas()))
def test_corpus_public_areas_read_as_tpm2_pytss_reads_them(name: str) -> None:
    data = _corpus_public_areas()[name]
    ours = read_public(data)
    assert_same_public(ours, data)
    theirs = _pytss_area(data)
    assert ours.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == serialization.load_pem_public_key(theirs.to_pem()).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    careful = _read_tpmt_public(_Reader(ours.marshaled, "TPMT_PUBLIC"), ours.marshaled)
    assert careful == ours  # the fast path and the field-by-field reader agree


def test_keylime_ak_name_attributes_and_flags() -> None:
    ak = read_public(corpus_bytes(KEYLIME + "ak.pub"))
    assert ak.name() == corpus_bytes(KEYLIME + "ak.name")
    assert ak.is_rsa and not ak.is_ecc
    needed = ObjectAttributes.RESTRICTED | ObjectAttributes.SIGN_ENCRYPT | ObjectAttributes.FIXED_TPM
    assert needed in ak.attributes and ObjectAttributes.DECRYPT not in ak.attributes
    assert isinstance(ak.parameters, RSAParameters) and ak.parameters.key_bits == 2048
    ek = read_public(corpus_bytes(KEYLIME + "ek.pub"))
    assert ObjectAttributes.DECRYPT in ek.attributes and ObjectAttributes.SIGN_ENCRYPT not in ek.attributes


@pytest.mark.parametrize("name", list(_corpus_public_areas()))
def test_every_truncation_of_a_corpus_public_area_is_refused_by_name(name: str) -> None:
    data = _corpus_public_areas()[name]
    assert_every_truncation_is_named(data, read_public, "TPM2B_PUBLIC", "TPMT_PUBLIC", "public area")
    assert all(_pytss_refuses(data[:cut]) for cut in range(len(data)))  # the oracle refuses them too
    with pytest.raises(TPMStructureError) as err:
        read_public(data + b"\0")
    assert err.value.code == "tpm-structure-trailing-bytes"


def test_truncated_public_area_names_the_field_and_offset() -> None:
    data = corpus_bytes(KEYLIME + "ak.pub")
    with pytest.raises(TPMStructureError) as err:
        read_public_area(data[2:100])
    assert err.value.message == (
        "TPMT_PUBLIC is truncated at offset 24: TPMT_PUBLIC.unique.rsa.buffer needs 256 byte(s), 74 left"
    )
    with pytest.raises(TPMStructureError) as err:
        read_public(data[:100])
    assert err.value.message == "TPM2B_PUBLIC is truncated: its size says 280 bytes, 98 follow"


@pytest.mark.swtpm
@pytest.mark.parametrize("kind", ["rsa", "ecc"])
def test_aks_and_keys_a_real_tpm_makes(swtpm: Any, kind: str) -> None:
    from secl.host.tpm import TPMAdapter

    with TPMAdapter(swtpm.tcti) as tpm:
        for key in (tpm.create_ak(kind), tpm.create_key(kind)):
            ours = read_public(key.public)
            assert_same_public(ours, key.public)
            assert ours.name() == key.name
            assert ours.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ) == key.pem().replace(b"\r", b"")
            tpm.flush(key)
    assert ObjectAttributes.RESTRICTED in ours.attributes or ObjectAttributes.DECRYPT in ours.attributes


# --- public areas: generated ---------------------------------------------------------------------------

_HASHES = (0x0004, 0x000B, 0x000C, 0x000D, 0x0012)
_U16 = st.integers(0, 0xFFFF)


def _u16(*values: int) -> bytes:
    return b"".join(struct.pack(">H", v) for v in values)


def _tpm2b(data: bytes) -> bytes:
    return _u16(len(data)) + data


@st.composite
def public_areas(draw: st.DrawFn) -> bytes:
    """A marshalled TPMT_PUBLIC of an RSA or ECC key with any field values the TPM's unmarshalling takes.

    (KDF2 is left out of the ECC KDF schemes: the TCG defines it, but this tpm2-tss refuses it.)"""
    kind = draw(st.sampled_from([ALG_RSA, ALG_ECC]))
    head = _u16(kind, draw(st.sampled_from(_HASHES))) + struct.pack(">I", draw(st.integers(0, 0xFFFFFFFF)))
    head += _tpm2b(draw(st.binary(max_size=64)))
    symmetric = draw(
        st.one_of(
            st.just(_u16(0x0010)),
            st.builds(_u16, st.sampled_from([0x0006, 0x0013, 0x0026]), _U16, _U16),
            st.builds(lambda h: _u16(0x000A, h), st.sampled_from(_HASHES)),
        )
    )
    scheme = draw(
        st.one_of(
            st.just(_u16(0x0010)),
            st.just(_u16(0x0015)),
            st.builds(
                _u16,
                st.sampled_from([0x0014, 0x0016, 0x0017, 0x0018, 0x0019, 0x001B, 0x001C, 0x001D]),
                st.sampled_from(_HASHES),
            ),
            st.builds(lambda h, c: _u16(0x001A, h, c), st.sampled_from(_HASHES), _U16),
        )
    )
    if kind == ALG_RSA:
        tail = _u16(draw(st.sampled_from([1024, 2048, 3072, 4096]) | _U16))
        tail += struct.pack(">I", draw(st.sampled_from([0, 65537]) | st.integers(0, 0xFFFFFFFF)))
        tail += _tpm2b(draw(st.binary(max_size=512)))
    else:
        tail = _u16(draw(st.sampled_from([1, 2, 3, 4, 5, 0x10, 0x20]) | _U16))
        tail += draw(
            st.one_of(
                st.just(_u16(0x0010)),
                st.builds(
                    _u16,
                    st.sampled_from([0x0007, 0x0020, 0x0022]),
                    st.sampled_from(_HASHES),
                ),
            )
        )
        tail += _tpm2b(draw(st.binary(max_size=128))) + _tpm2b(draw(st.binary(max_size=128)))
    return head + symmetric + scheme + tail


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(area=public_areas(), wrapped=st.booleans(), cut=st.floats(0, 1, exclude_max=True))
def test_generated_public_areas_read_as_tpm2_pytss_reads_them(area: bytes, wrapped: bool, cut: float) -> None:
    data = _tpm2b(area) if wrapped else area
    ours = read_public(data)
    assert_same_public(ours, data)
    assert ours == _read_tpmt_public(_Reader(area, "TPMT_PUBLIC"), area)  # fast path == careful reader
    # Every truncation is refused, by name, saying where; the oracle refuses the example's random one too.
    for end in range(len(data)):
        with pytest.raises(TPMStructureError) as err:
            read_public(data[:end])
        assert err.value.code in ("tpm-structure-truncated", "tpm-structure-malformed"), (end, err.value)
        assert "truncated" in err.value.message or "offset" in err.value.message
    assert _pytss_refuses(data[: int(len(data) * cut)])


def test_public_key_refuses_a_modulus_shorter_than_its_key_bits() -> None:
    ak = read_public(corpus_bytes(KEYLIME + "ak.pub"))
    assert isinstance(ak.unique, bytes)
    forged = ak.marshaled.replace(_tpm2b(ak.unique), _tpm2b(ak.unique[:128]))
    with pytest.raises(TPMStructureError) as err:
        read_public_area(forged).public_key()
    assert err.value.code == "public-key-unsupported" and "2048 bits" in err.value.message


@pytest.mark.parametrize(
    ("data", "code", "text"),
    [
        (b"", "tpm-structure-truncated", "TPMT_PUBLIC is truncated at offset 0"),
        (_u16(0x0008, 0x000B) + bytes(8), "public-type-unsupported", "KEYEDHASH"),
        (
            _u16(0x0099, 0x000B) + bytes(8),
            "tpm-structure-malformed",
            "TPMT_PUBLIC.type at offset 0 is 0x0099",
        ),
        (
            _u16(0x0001, 0x000B) + bytes(4) + _u16(65),
            "tpm-structure-malformed",
            "authPolicy at offset 8 claims 65",
        ),
        (
            _u16(0x0001, 0x000B) + bytes(4) + _u16(0, 0x0099),
            "tpm-structure-malformed",
            "symDetail.algorithm at offset 10",
        ),
    ],
)
def test_malformed_public_areas_are_named(data: bytes, code: str, text: str) -> None:
    with pytest.raises(TPMStructureError) as err:
        read_public_area(data)
    assert err.value.code == code and text in err.value.message, err.value.message


# --- attestations and signatures ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(_corpus_quotes()))
def test_corpus_attestations_and_signatures_read_as_tpm2_pytss_reads_them(name: str) -> None:
    attest, signature = _corpus_quotes()[name]
    ours, theirs = read_attest(attest), TPMS_ATTEST.unmarshal(attest)[0]
    assert ours == _read_attest(attest)
    clock = theirs.clockInfo
    assert (ours.magic, ours.type, ours.firmware_version) == (
        theirs.magic,
        theirs.type,
        theirs.firmwareVersion,
    )
    assert (ours.clock, ours.reset_count, ours.restart_count, ours.safe) == (
        clock.clock,
        clock.resetCount,
        clock.restartCount,
        bool(clock.safe),
    )
    assert (ours.qualified_signer, ours.extra_data) == (
        bytes(theirs.qualifiedSigner),
        bytes(theirs.extraData),
    )
    if isinstance(ours.attested, QuoteInfo):
        quote = theirs.attested.quote
        sels = quote.pcrSelect.pcrSelections[: quote.pcrSelect.count]
        assert ours.attested.pcr_select == tuple(
            (int(s.hash), bytes(s.pcrSelect[0 : s.sizeofSelect])) for s in sels
        )
        assert ours.attested.pcr_digest == bytes(quote.pcrDigest)
    sig, their_sig = read_signature(signature), TPMT_SIGNATURE.unmarshal(signature)[0]
    assert (sig.scheme, sig.hash_alg) == (int(their_sig.sigAlg), int(their_sig.signature.rsassa.hash))
    assert unmarshal_signature(signature).signature == bytes(their_sig)
    assert_every_truncation_is_named(attest, read_attest, "TPMS_ATTEST")
    assert_every_truncation_is_named(signature, read_signature, "TPMT_SIGNATURE")


@st.composite
def quotes(draw: st.DrawFn) -> bytes:
    banks = draw(st.lists(st.tuples(st.sampled_from(_HASHES), st.binary(max_size=4)), max_size=16))
    body = struct.pack(">I", len(banks)) + b"".join(_u16(h) + bytes([len(b)]) + b for h, b in banks)
    body += _tpm2b(draw(st.binary(max_size=64)))
    header = struct.pack(">IH", draw(st.integers(0, 0xFFFFFFFF)), 0x8018)
    header += _tpm2b(draw(st.binary(max_size=68))) + _tpm2b(draw(st.binary(max_size=64)))
    header += struct.pack(">QIIBQ", *(draw(st.integers(0, (1 << n) - 1)) for n in (64, 32, 32, 1, 64)))
    return header + body


@settings(max_examples=300, deadline=None)
@given(attest=quotes())
def test_generated_quotes_read_as_tpm2_pytss_reads_them(attest: bytes) -> None:
    ours, theirs = read_attest(attest), TPMS_ATTEST.unmarshal(attest)[0]
    assert ours == _read_attest(attest)
    assert theirs.marshal() == attest
    assert isinstance(ours.attested, QuoteInfo)
    assert ours.attested.pcr_digest == bytes(theirs.attested.quote.pcrDigest)
    assert (ours.extra_data, ours.clock, ours.safe) == (
        bytes(theirs.extraData),
        theirs.clockInfo.clock,
        bool(theirs.clockInfo.safe),
    )


def test_a_truncated_quote_names_the_structure_and_the_offset() -> None:
    attest, signature = _corpus_quotes()["keylime"]
    ak = load_ak_public(corpus_bytes(KEYLIME + "ak.pub"))
    with pytest.raises(QuoteError) as err:
        verify_quote(ak, attest[:60], signature, qualifying_data=b"")
    assert err.value.code == "quote-attest-malformed"
    assert err.value.message.startswith("malformed TPMS_ATTEST: TPMS_ATTEST is truncated at offset ")
    assert "needs" in err.value.message and "mu:" not in err.value.message
