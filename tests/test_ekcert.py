"""EK certificate loading and chain validation, on the corpus's real vendor certificates and on a made chain.

The corpus part pins which real certificates need which repair, and uses the real ``openssl verify`` as an
oracle: whatever chain openssl accepts at an instant must validate here at the same instant, and whatever
it refuses must be rejected here with a named code. The made chain pins each rule on its own.
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from secl.core.ekcert import (
    MAX_CHAIN_LENGTH,
    EKTrustStore,
    LoadedCertificate,
    TPMInfo,
    load_certificates,
    load_ek_certificate,
    verify_ek_certificate,
)
from secl.core.errors import EKCertificateError, EvidenceError
from tests.corpus import corpus_bytes, corpus_path, corpus_root

OPENSSL = "/usr/bin/openssl"
STORE = "keylime/tpm_cert_store"
ENDORSEMENT_CA = "intel-secl/pkg/hvs/domain/mocks/resources/EndorsementCA-external.pem"
MIRROR_ROOTS = "tpm-ca-certificates/MIRROR.tpm-ca-certificates.pem"
MIRROR_INTERMEDIATES = "tpm-ca-certificates/MIRROR.tpm-intermediate-ca-certificates.pem"
INTEL_ROOTS = "wif-bunker/wif_bunker/attestation/roots/manually-managed"
NUVOTON_2111 = (
    "wif-bunker/wif_bunker/attestation/roots/roots/"
    "nuvoton_technology_corporation_c_tw_nuvoton_tpm_root_ca_2111_o_nuvoton_technology_corporation_c_tw.pem"
)
GCE_CA = "go-tpm-tools/server/ca-certs"
STM_RSA_EK = "keylime/extracted_from_tests/st_sha256_with_rsa.der"
STM_ECC_EK = "keylime/extracted_from_tests/st_ecdsa_sha256.der"

# Each corpus file with its certificate count (INDEX.md, "EK certificates and vendor CAs").
CORPUS_FILES = {
    **{f"{STORE}/{name}": 1 for name in sorted(p.name for p in corpus_path(STORE).glob("*.pem"))},
    **{
        f"keylime/extracted_from_tests/{name}.der": 1
        for name in ("st_sha256_with_rsa", "st_ecdsa_sha256", "nuvoton_ecdsa_sha256", "idevid", "iak")
    },
    "keylime/test-data/files/idevid-test-ca/iak_idevid_chain.pem": 2,
    "wif-bunker/tests/fixtures/nuc_intel_ek.pem": 1,
    "wif-bunker/tests/fixtures/dell_nuvoton_ek.pem": 1,
    f"{INTEL_ROOTS}/intel_cnl_epid_post_b1lp_prod2_intermediate.pem": 1,
    f"{INTEL_ROOTS}/intel_corporation_tpm_ek_root_cert_signing.pem": 1,
    NUVOTON_2111: 1,
    **{
        f"go-tpm-tools/certificates/{p}_tpm_{k}_{u}_cert.pem": 1
        for p in ("pca", "uca")
        for k in ("rsa", "ecc")
        for u in ("sign", "enc")
    },
    **{
        f"{GCE_CA}/{name}": 1
        for name in (
            "gcp_ek_ak_ca_intermediate_v3.crt",
            "gcp_ek_ak_ca_root.crt",
            "tpm_ek_intermediate_2.crt",
            "tpm_ek_intermediate_3.crt",
            "tpm_ek_root_1.cer",
        )
    },
    ENDORSEMENT_CA: 19,
    MIRROR_ROOTS: 26,
    MIRROR_INTERMEDIATES: 143,
}

SET_ORDER = ("lax-der: InvalidSetOrdering",)
# Every certificate python-cryptography does not take as it is; all others must load with no fixup.
EXPECTED_FIXUPS = {
    **{
        (f"{STORE}/{name}.pem", 0): SET_ORDER
        for name in ("NTC1", "NTC2", "NUVO_0100", "NUVO_1110", "NUVO_1111", "NUVO_2110", "NUVO_2111")
    },
    ("keylime/extracted_from_tests/nuvoton_ecdsa_sha256.der", 0): SET_ORDER,
    (STM_RSA_EK, 0): ("trailing-bytes-trimmed",),
    ("wif-bunker/tests/fixtures/nuc_intel_ek.pem", 0): ("lax-der: EncodedDefault",),
    ("wif-bunker/tests/fixtures/dell_nuvoton_ek.pem", 0): SET_ORDER,
    (NUVOTON_2111, 0): SET_ORDER,
    # STM Intermediate CA 01 and 02 as ISecL shipped them: a serial number encoded as 00 00 00 01.
    (ENDORSEMENT_CA, 2): ("lax-der: InvalidValue",),
    (ENDORSEMENT_CA, 3): ("lax-der: InvalidValue",),
    (ENDORSEMENT_CA, 12): SET_ORDER,
    (ENDORSEMENT_CA, 13): SET_ORDER,
    # Intel's OnDie CA root: NULL parameters after ecdsa-with-SHA384.
    (MIRROR_ROOTS, 7): ("lax-der: ExtraData",),
    **{(MIRROR_ROOTS, index): SET_ORDER for index in (13, 14, 15, 16)},
}


def _load(relative: str) -> tuple[LoadedCertificate, ...]:
    return load_certificates(corpus_bytes(relative))


def _one(relative: str) -> LoadedCertificate:
    (cert,) = _load(relative)
    return cert


@pytest.mark.parametrize("relative", sorted(CORPUS_FILES))
def test_every_corpus_certificate_loads_strictly_or_with_a_named_fixup(relative: str) -> None:
    certs = _load(relative)
    assert len(certs) == CORPUS_FILES[relative]
    for index, cert in enumerate(certs):
        assert cert.fixups == EXPECTED_FIXUPS.get((relative, index), ()), (relative, index, str(cert.subject))
        assert cert.not_before.tzinfo is not None
        assert len(cert.fingerprint_sha256) == 64
    assert len(CORPUS_FILES) == 51 + 5 + 1 + 2 + 3 + 8 + 5 + 3


def test_corpus_cas_all_carry_basic_constraints_ca() -> None:
    # The verifier requires cA=TRUE of every issuer, anchors included; no real vendor CA needs an exception.
    leaves = ("extracted_from_tests/", "tests/fixtures/", "go-tpm-tools/certificates/")
    ca_files = [relative for relative in CORPUS_FILES if not any(part in relative for part in leaves)]
    assert len(ca_files) == 51 + 1 + 3 + 5 + 3
    for relative in ca_files:
        for cert in _load(relative):
            assert cert.is_ca is True, (relative, str(cert.subject))
            assert cert.key_usage is None or "key_cert_sign" in cert.key_usage


def test_known_ek_certificates_details() -> None:
    rsa_ek = load_ek_certificate(corpus_bytes(STM_RSA_EK))
    assert len(corpus_bytes(STM_RSA_EK)) - len(rsa_ek.der) == 431
    assert rsa_ek.tpm == TPMInfo("id:53544D20", "ST33HTPHAHB4", "id:00490004")
    assert str(rsa_ek.issuer) == "CN=STM TPM EK Intermediate CA 05,O=STMicroelectronics NV,C=CH"
    assert rsa_ek.is_ca is False and rsa_ek.key_usage == frozenset({"key_encipherment"})
    dell = _one("wif-bunker/tests/fixtures/dell_nuvoton_ek.pem")
    assert dell.tpm == TPMInfo("id:4E544300", "NPCT75x", "id:72")  # PrintableString, unlike the TCG profile
    assert str(dell.subject) == ""
    assert str(dell.issuer) == "CN=Nuvoton TPM Root CA 2111+O=Nuvoton Technology Corporation+C=TW"
    assert _one("wif-bunker/tests/fixtures/nuc_intel_ek.pem").tpm == TPMInfo(
        "id:494E5443", "CNL", "id:00020000"
    )
    # The same Nuvoton root from keylime and from wif-bunker is byte-identical.
    assert _one(f"{STORE}/NUVO_2111.pem") == _one(NUVOTON_2111)


# --------------------------------------------------------------------------------------------- openssl oracle


@dataclass(frozen=True)
class OracleCase:
    name: str
    leaf: LoadedCertificate
    roots: tuple[LoadedCertificate, ...]
    intermediates: tuple[LoadedCertificate, ...] = ()
    # openssl wants a self-signed root at the top unless -partial_chain makes every -CAfile certificate an
    # anchor, which is what EKTrustStore does. STM_RSA_RT is such a case: GlobalSign cross-signed it.
    partial_chain: bool = True


def _oracle_cases() -> list[OracleCase]:
    intel = f"{INTEL_ROOTS}/intel_cnl_epid_post_b1lp_prod2_intermediate.pem"
    chain = _load("keylime/test-data/files/idevid-test-ca/iak_idevid_chain.pem")
    chain_roots = tuple(c for c in chain if c.subject == c.issuer)
    chain_intermediates = tuple(c for c in chain if c.subject != c.issuer)
    cases = [
        OracleCase("STM RSA EK (trimmed)", _one(STM_RSA_EK), (_one(f"{STORE}/STM_RSA_RT.pem"),),
                   (_one(f"{STORE}/STM_RSA_05I.pem"),)),
        OracleCase("STM RSA EK to GlobalSign", _one(STM_RSA_EK), (_one(f"{STORE}/GS_TPM_RT.pem"),),
                   (_one(f"{STORE}/STM_RSA_05I.pem"), _one(f"{STORE}/STM_RSA_RT.pem")), partial_chain=False),
        OracleCase("STM ECC EK", _one(STM_ECC_EK), (_one(f"{STORE}/STM_ECC_01RT.pem"),),
                   (_one(f"{STORE}/STM_ECC_01I.pem"),)),
        OracleCase("nuvoton_ecdsa_sha256.der", _one("keylime/extracted_from_tests/nuvoton_ecdsa_sha256.der"),
                   (_one(f"{STORE}/NUVO_2110.pem"),)),
        OracleCase("HPE IDevID", _one("keylime/extracted_from_tests/idevid.der"), chain_roots,
                   chain_intermediates),
        OracleCase("HPE IAK", _one("keylime/extracted_from_tests/iak.der"), chain_roots, chain_intermediates),
        OracleCase("Intel NUC PTT EK", _one("wif-bunker/tests/fixtures/nuc_intel_ek.pem"),
                   (_one(f"{INTEL_ROOTS}/intel_corporation_tpm_ek_root_cert_signing.pem"),), (_one(intel),)),
        OracleCase("Dell Nuvoton EK", _one("wif-bunker/tests/fixtures/dell_nuvoton_ek.pem"),
                   (_one(NUVOTON_2111),)),
    ]  # fmt: skip
    gce = {
        "pca": (
            _one(f"{GCE_CA}/gcp_ek_ak_ca_root.crt"),
            (_one(f"{GCE_CA}/gcp_ek_ak_ca_intermediate_v3.crt"),),
        ),
        # Both tpm_ek intermediates are offered; only _3 issued the uca_* certificates.
        "uca": (
            _one(f"{GCE_CA}/tpm_ek_root_1.cer"),
            (_one(f"{GCE_CA}/tpm_ek_intermediate_2.crt"), _one(f"{GCE_CA}/tpm_ek_intermediate_3.crt")),
        ),
    }
    for prefix, (root, intermediates) in gce.items():
        for kind in ("rsa_sign", "rsa_enc", "ecc_sign", "ecc_enc"):
            leaf = _one(f"go-tpm-tools/certificates/{prefix}_tpm_{kind}_cert.pem")
            cases.append(OracleCase(f"GCE {prefix}_tpm_{kind}", leaf, (root,), intermediates))
    store = {
        name: _one(f"{STORE}/{name}") for name in sorted(p.name for p in corpus_path(STORE).glob("*.pem"))
    }
    for name, cert in store.items():
        if cert.subject != cert.issuer:
            rest = tuple(c for n, c in store.items() if n != name)
            cases.append(OracleCase(f"keylime {name}", cert, rest))
    return cases


ORACLE_CASES = _oracle_cases()
ORACLE_INSTANTS = {
    "now": datetime.now(UTC).replace(microsecond=0),
    "2021-06-01": datetime(2021, 6, 1, tzinfo=UTC),
    "2040-01-01": datetime(2040, 1, 1, tzinfo=UTC),
}


def _pem(certs: tuple[LoadedCertificate, ...]) -> bytes:
    out = b""
    for cert in certs:
        body = base64.encodebytes(cert.der).replace(b"\n", b"")
        lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        out += b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"
    return out


def _openssl_verify(case: OracleCase, at: datetime, tmp_path: Path) -> tuple[bool, str]:
    (tmp_path / "leaf.pem").write_bytes(_pem((case.leaf,)))
    (tmp_path / "roots.pem").write_bytes(_pem(case.roots))
    args = [OPENSSL, "verify", "-attime", str(int(at.timestamp())), "-CAfile", str(tmp_path / "roots.pem")]
    if case.intermediates:
        (tmp_path / "untrusted.pem").write_bytes(_pem(case.intermediates))
        args += ["-untrusted", str(tmp_path / "untrusted.pem")]
    if case.partial_chain:
        args.append("-partial_chain")
    result = subprocess.run([*args, str(tmp_path / "leaf.pem")], capture_output=True, text=True, check=False)
    return result.returncode == 0, (result.stdout + result.stderr).strip().splitlines()[-1]


def _ours(case: OracleCase, at: datetime) -> str:
    try:
        verified = verify_ek_certificate(
            case.leaf, EKTrustStore(case.roots), intermediates=case.intermediates, at=at
        )
    except EKCertificateError as exc:
        return exc.code
    json.dumps(verified.to_dict())
    return "ok"


@pytest.mark.parametrize("instant", sorted(ORACLE_INSTANTS))
@pytest.mark.parametrize("case", ORACLE_CASES, ids=[c.name for c in ORACLE_CASES])
def test_openssl_oracle(case: OracleCase, instant: str, tmp_path: Path) -> None:
    at = ORACLE_INSTANTS[instant]
    openssl_ok, openssl_says = _openssl_verify(case, at, tmp_path)
    ours = _ours(case, at)
    print(f"{case.name} @ {instant}: openssl {'OK' if openssl_ok else openssl_says!r}, ours {ours}")
    if openssl_ok:
        assert ours == "ok", f"openssl accepts {case.name}, we said {ours}"
    else:
        assert ours != "ok", f"openssl refuses {case.name} ({openssl_says}), we accepted it"


@pytest.mark.parametrize(
    "case", [c for c in ORACLE_CASES if not c.name.startswith("keylime ")], ids=lambda c: c.name
)
def test_every_chain_the_index_names_validates_with_openssl_and_here(
    case: OracleCase, tmp_path: Path
) -> None:
    # At an instant inside every certificate's validity period, each chain INDEX.md names passes both.
    certs = (case.leaf, *case.roots, *case.intermediates)
    at = max(c.not_before for c in certs) + timedelta(days=1)
    assert at < min(c.not_after for c in certs)
    assert _openssl_verify(case, at, tmp_path)[0]
    assert _ours(case, at) == "ok"


def test_stm_rsa_ek_chain_reports_its_fixups() -> None:
    verified = verify_ek_certificate(
        _one(STM_RSA_EK), EKTrustStore((_one(f"{STORE}/STM_RSA_RT.pem"),)),
        intermediates=(_one(f"{STORE}/STM_RSA_05I.pem"),), at=datetime(2023, 6, 1, tzinfo=UTC),
    )  # fmt: skip
    assert [c["fixups"] for c in verified.to_dict()["chain"]] == [["trailing-bytes-trimmed"], [], []]


def test_aki_naming_another_issuer_certificate_is_refused_as_openssl_does() -> None:
    # IFX_RSA_20I's AKI names serial 3 of "IFX TPM EK Root CA"; keylime's IFX_RSA_RT has that name and key but
    # is the VeriSign-signed certificate with another serial. The signature would verify; openssl refuses it.
    store = EKTrustStore((_one(f"{STORE}/IFX_RSA_RT.pem"),))
    leaf = _one(f"{STORE}/IFX_RSA_20I.pem")
    assert leaf.authority_cert_serial == 3 and store.certificates[0].serial_number != 3
    with pytest.raises(EKCertificateError, match="authorityKeyIdentifier") as info:
        verify_ek_certificate(leaf, store, at=datetime(2023, 6, 1, tzinfo=UTC))
    assert info.value.code == "untrusted-issuer"


def test_whole_vendor_bundle_as_trust_store() -> None:
    # Like SecL's EndorsementCA file, a bundle mixes roots and intermediates: paths end at the intermediate.
    store = EKTrustStore.from_bundles(
        *(corpus_bytes(f"{STORE}/{p.name}") for p in corpus_path(STORE).glob("*.pem"))
    )
    at = datetime(2023, 6, 1, tzinfo=UTC)
    chain = verify_ek_certificate(_one(STM_ECC_EK), store, at=at).chain
    assert [str(c.subject) for c in chain[1:]] == [
        "CN=STM TPM ECC Intermediate CA 01,O=STMicroelectronics NV,C=CH"
    ]
    dell = verify_ek_certificate(_one("wif-bunker/tests/fixtures/dell_nuvoton_ek.pem"), store, at=at)
    assert dell.trust_anchor.fixups == SET_ORDER and dell.certificate.fixups == SET_ORDER


# ------------------------------------------------------------------------------------------- negative, corpus

AT = datetime(2023, 6, 1, tzinfo=UTC)


def _stm_ecc(at: datetime = AT, leaf: LoadedCertificate | None = None) -> object:
    return verify_ek_certificate(
        leaf or _one(STM_ECC_EK), EKTrustStore((_one(f"{STORE}/STM_ECC_01RT.pem"),)),
        intermediates=(_one(f"{STORE}/STM_ECC_01I.pem"),), at=at,
    )  # fmt: skip


def _code(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(EKCertificateError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value.code


@pytest.mark.parametrize("relative", [STM_ECC_EK, STM_RSA_EK])
def test_tampered_signature_is_bad_signature(relative: str) -> None:
    der = bytearray(_one(relative).der)
    der[-1] ^= 0x01
    if relative == STM_RSA_EK:
        roots, intermediates = (_one(f"{STORE}/STM_RSA_RT.pem"),), (_one(f"{STORE}/STM_RSA_05I.pem"),)
    else:
        roots, intermediates = (_one(f"{STORE}/STM_ECC_01RT.pem"),), (_one(f"{STORE}/STM_ECC_01I.pem"),)
    tampered = load_ek_certificate(bytes(der))
    assert _code(
        verify_ek_certificate, tampered, EKTrustStore(roots), intermediates=intermediates, at=AT
    ) == ("bad-signature")


def test_expired_and_not_yet_valid() -> None:
    leaf = _one(STM_ECC_EK)
    assert _code(_stm_ecc, leaf.not_after + timedelta(seconds=1)) == "expired"
    assert _code(_stm_ecc, leaf.not_before - timedelta(seconds=1)) == "not-yet-valid"
    assert _stm_ecc(leaf.not_after) is not None  # not_after itself is still valid, as in openssl


def test_issuer_not_in_store_is_untrusted() -> None:
    store = EKTrustStore((_one(f"{STORE}/NUVO_2111.pem"),))
    assert _code(verify_ek_certificate, _one(STM_ECC_EK), store, at=AT) == "untrusted-issuer"
    # A self-signed root that is not in the store is not trusted either.
    assert _code(verify_ek_certificate, _one(f"{STORE}/STM_ECC_01RT.pem"), store, at=AT) == "untrusted-issuer"


def test_tcg_nv_header_is_stripped_and_length_checked() -> None:
    der = _one(STM_ECC_EK).der
    loaded = load_ek_certificate(b"\x10\x01\x00" + len(der).to_bytes(2, "big") + der + b"\xff" * 7)
    assert loaded.fixups == ("tcg-nv-header-stripped",) and loaded.der == der
    assert (
        _code(load_ek_certificate, b"\x10\x01\x00" + (len(der) + 1).to_bytes(2, "big") + der) == "malformed"
    )
    assert _code(load_ek_certificate, b"\x10\x01\x00\x00") == "malformed"


@pytest.mark.parametrize("cut", [0, 1, 2, 4, 10, 100, 400, -1])
def test_truncated_der_is_malformed(cut: int) -> None:
    der = _one(STM_ECC_EK).der
    assert _code(load_ek_certificate, der[:cut]) == "malformed"


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00" * 50, b"\x30\x80" + b"\x00" * 10, b"\x30\x85" + b"\xff" * 9,
     b"-----BEGIN CERTIFICATE-----\nAAA",
     b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
     b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", b"\x30\x03\x02\x01\x01"],
)  # fmt: skip
def test_garbage_is_malformed(data: bytes) -> None:
    assert _code(load_ek_certificate, data) == "malformed"


def test_structural_lies_are_malformed() -> None:
    der = _one(STM_ECC_EK).der
    version = der.find(bytes.fromhex("a003020102"))
    assert (
        _code(load_ek_certificate, der[:version] + bytes.fromhex("a003020103") + der[version + 5 :])
        == "malformed"
    )
    # The outer signatureAlgorithm must repeat the one inside tbsCertificate (ecdsa-with-SHA256 -> SHA384).
    outer = der.rfind(bytes.fromhex("06082a8648ce3d040302"))
    swapped = der[:outer] + bytes.fromhex("06082a8648ce3d040303") + der[outer + 10 :]
    assert _code(load_ek_certificate, swapped) == "malformed"


def test_bundle_with_a_bad_block_names_it() -> None:
    good = corpus_bytes(f"{STORE}/STM_ECC_01I.pem")
    bad = b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"
    with pytest.raises(EKCertificateError, match="certificate 2 of the bundle") as info:
        load_certificates(good + b"# comment\n" + bad + good)
    assert info.value.code == "malformed"
    assert len(load_certificates(good + b"text between blocks\n" + good)) == 2
    assert _code(load_ek_certificate, good + good) == "malformed"  # one certificate means one
    assert _code(load_certificates, b"-----BEGIN X-----\n-----END X-----\n") == "malformed"
    with pytest.raises(TypeError):
        load_ek_certificate("not bytes")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_ekcertificateerror(data: bytes) -> None:
    try:
        cert = load_ek_certificate(data)
    except EKCertificateError as exc:  # any other exception fails the test
        assert exc.code and exc.message
    else:
        assert cert.der  # what did load is a certificate with its DER


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255), st.booleans())
def test_mutated_certificates_raise_only_ekcertificateerror(position: int, value: int, cut: bool) -> None:
    der = corpus_bytes(f"{STORE}/NUVO_2111.pem")  # PEM of a lax certificate; mutate its DER instead
    der = load_ek_certificate(der).der
    index = position % len(der)
    mutated = der[:index] if cut else der[:index] + bytes([value]) + der[index + 1 :]
    try:
        cert = load_ek_certificate(mutated)
        verify_ek_certificate(cert, EKTrustStore((load_ek_certificate(der),)), at=AT)
    except EKCertificateError:
        pass


# --------------------------------------------------------------------------------------------- made chain

NOW = datetime(2025, 1, 1, tzinfo=UTC)
TCG_MANUFACTURER, TCG_MODEL, TCG_VERSION = (x509.ObjectIdentifier(f"2.23.133.2.{n}") for n in (1, 2, 3))


@dataclass
class Made:
    cert: LoadedCertificate
    key: object


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "secl test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])  # fmt: skip


def _make(
    subject: str | x509.Name,
    issuer: Made | None,
    *,
    key: object | None = None,
    ca: bool | None = True,
    path_length: int | None = None,
    key_usage: bool = True,
    issuer_name: x509.Name | None = None,
    days: tuple[int, int] = (-365, 365),
    san: bool = False,
    pss: bool = False,
    extra: tuple[x509.ExtensionType, bool] | None = None,
) -> Made:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = subject if isinstance(subject, x509.Name) else _name(subject)
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(
            issuer_name or (x509.Name.from_rfc4514_string(issuer.cert.subject.rfc4514) if issuer else name)
        )
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + timedelta(days=days[0]))
        .not_valid_after(NOW + timedelta(days=days[1]))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    if key_usage:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, not ca, False, False, bool(ca), bool(ca), False, False), critical=True
        )
    if san:
        values = ((TCG_MANUFACTURER, "id:53454331"), (TCG_MODEL, "secl"), (TCG_VERSION, "id:00010002"))
        attributes = [x509.NameAttribute(oid, value) for oid, value in values]
        tpm = x509.Name([x509.RelativeDistinguishedName(attributes)])
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DirectoryName(tpm)]), critical=True)
    if extra:
        builder = builder.add_extension(*extra)
    if isinstance(signer, ed25519.Ed25519PrivateKey):
        cert = builder.sign(signer, None)
    elif pss:
        cert = builder.sign(
            signer, hashes.SHA256(), rsa_padding=padding.PSS(padding.MGF1(hashes.SHA256()), 32)
        )
    else:
        cert = builder.sign(
            signer, hashes.SHA384() if isinstance(signer, ec.EllipticCurvePrivateKey) else hashes.SHA256()
        )
    return Made(load_ek_certificate(cert.public_bytes(Encoding.DER)), key)


@pytest.fixture(scope="module")
def made() -> dict[str, Made]:
    root = _make("Test EK Root", None, key=ec.generate_private_key(ec.SECP384R1()))
    intermediate = _make("Test EK Intermediate", root, key=rsa.generate_private_key(65537, 2048))
    leaf = _make(x509.Name([]), intermediate, key=rsa.generate_private_key(65537, 2048), ca=False, san=True)
    pss_leaf = _make(x509.Name([]), intermediate, ca=False, pss=True)
    return {"root": root, "intermediate": intermediate, "leaf": leaf, "pss_leaf": pss_leaf}


def test_made_chain_verifies_and_exports(made: dict[str, Made]) -> None:
    store = EKTrustStore((made["root"].cert,))
    verified = verify_ek_certificate(
        made["leaf"].cert, store, intermediates=(made["intermediate"].cert,), at=NOW
    )
    assert verified.chain == (made["leaf"].cert, made["intermediate"].cert, made["root"].cert)
    assert verified.certificate.tpm == TPMInfo("id:53454331", "secl", "id:00010002")
    exported = json.loads(json.dumps(verified.to_dict()))
    assert exported["verified"] is True and exported["trust_anchor"] == "CN=Test EK Root,O=secl test"
    assert exported["tpm"] == {"manufacturer": "id:53454331", "model": "secl", "version": "id:00010002"}
    assert [c["fixups"] for c in exported["chain"]] == [[], [], []]
    assert exported["chain"][0]["fingerprint_sha256"] == made["leaf"].cert.fingerprint_sha256
    assert verified.verified_at == NOW
    pss = verify_ek_certificate(
        made["pss_leaf"].cert, store, intermediates=(made["intermediate"].cert,), at=NOW
    )
    assert pss.certificate.signature_algorithm == "1.2.840.113549.1.1.10"


def test_path_ends_at_first_trusted_certificate(made: dict[str, Made]) -> None:
    # An intermediate in the store is an anchor; a pinned certificate is its own one-certificate path.
    store = EKTrustStore((made["intermediate"].cert,))
    assert len(verify_ek_certificate(made["leaf"].cert, store, at=NOW).chain) == 2
    assert verify_ek_certificate(made["leaf"].cert, EKTrustStore((made["leaf"].cert,)), at=NOW).chain == (
        made["leaf"].cert,
    )
    expired_anchor = _make("Test EK Root", None, key=made["root"].key, days=(-700, -1))
    store = EKTrustStore((expired_anchor.cert,))
    code = _code(
        verify_ek_certificate, made["leaf"].cert, store, intermediates=(made["intermediate"].cert,), at=NOW
    )
    assert code == "expired"


@pytest.mark.parametrize(
    ("options", "code"),
    [({"ca": False}, "issuer-not-a-ca"), ({"ca": None}, "issuer-not-a-ca"),
     ({"key_usage": False, "ca": None}, "issuer-not-a-ca"), ({"days": (1, 365)}, "not-yet-valid"),
     ({"days": (-365, -1)}, "expired")],
)  # fmt: skip
def test_intermediate_rules(made: dict[str, Made], options: dict, code: str) -> None:
    intermediate = _make("Test EK Intermediate", made["root"], **options)
    leaf = _make(x509.Name([]), intermediate, ca=False)
    store = EKTrustStore((made["root"].cert,))
    assert _code(verify_ek_certificate, leaf.cert, store, intermediates=(intermediate.cert,), at=NOW) == code


def test_key_usage_without_cert_sign_is_not_a_ca(made: dict[str, Made]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder().subject_name(_name("No Sign CA")).issuer_name(_name("Test EK Root"))
        .public_key(key.public_key()).serial_number(7).not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, True, False, False), True)
    )  # fmt: skip
    signed = builder.sign(made["root"].key, hashes.SHA384())  # type: ignore[arg-type]
    ca = load_ek_certificate(signed.public_bytes(Encoding.DER))
    leaf = _make(x509.Name([]), Made(ca, key), ca=False)
    store = EKTrustStore((made["root"].cert,))
    assert _code(verify_ek_certificate, leaf.cert, store, intermediates=(ca,), at=NOW) == "issuer-not-a-ca"


def test_path_length_constraint(made: dict[str, Made]) -> None:
    root = _make("Strict Root", None, path_length=0)
    intermediate = _make("Below Strict Root", root)
    leaf = _make(x509.Name([]), intermediate, ca=False)
    store = EKTrustStore((root.cert,))
    code = _code(verify_ek_certificate, leaf.cert, store, intermediates=(intermediate.cert,), at=NOW)
    assert code == "path-length-exceeded"
    assert verify_ek_certificate(_make(x509.Name([]), root, ca=False).cert, store, at=NOW)


def test_backtracks_past_a_failing_candidate(made: dict[str, Made]) -> None:
    # Same name, different key: tried first (listed first, no key identifiers), fails, then the real one.
    decoy = _make("Test EK Intermediate", made["root"])
    store = EKTrustStore((made["root"].cert,))
    chain = verify_ek_certificate(
        made["leaf"].cert, store, intermediates=(decoy.cert, made["intermediate"].cert), at=NOW
    ).chain
    assert chain[1] == made["intermediate"].cert
    code = _code(verify_ek_certificate, made["leaf"].cert, store, intermediates=(decoy.cert,), at=NOW)
    assert code == "bad-signature"
    # An expired copy of the real intermediate (same key) is passed over for the valid one.
    stale = _make("Test EK Intermediate", made["root"], key=made["intermediate"].key, days=(-900, -400))
    chain = verify_ek_certificate(
        made["leaf"].cert, store, intermediates=(stale.cert, made["intermediate"].cert), at=NOW
    ).chain
    assert chain[1] == made["intermediate"].cert


def test_names_match_after_rfc5280_folding(made: dict[str, Made]) -> None:
    sloppy = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SECL  Test"),
                        x509.NameAttribute(NameOID.COMMON_NAME, " test ek ROOT")])  # fmt: skip
    leaf = _make(x509.Name([]), made["root"], ca=False, issuer_name=sloppy)
    assert leaf.cert.issuer == made["root"].cert.subject
    assert (
        verify_ek_certificate(leaf.cert, EKTrustStore((made["root"].cert,)), at=NOW).chain[1]
        == made["root"].cert
    )


def test_chain_too_long(made: dict[str, Made]) -> None:
    chain = [made["root"]]
    for level in range(MAX_CHAIN_LENGTH):
        chain.append(_make(f"Level {level}", chain[-1]))
    leaf = _make(x509.Name([]), chain[-1], ca=False)
    store = EKTrustStore((made["root"].cert,))
    intermediates = tuple(m.cert for m in chain[1:])
    assert (
        _code(verify_ek_certificate, leaf.cert, store, intermediates=intermediates, at=NOW)
        == "chain-too-long"
    )
    assert (
        len(
            verify_ek_certificate(
                leaf.cert, EKTrustStore((chain[3].cert,)), intermediates=intermediates, at=NOW
            ).chain
        )
        == 7
    )


def test_unhandled_critical_extensions_are_refused(made: dict[str, Made]) -> None:
    constrained = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("example.com")], excluded_subtrees=None
    )
    intermediate = _make("Test EK Intermediate", made["root"], extra=(constrained, True))
    assert intermediate.cert.unhandled_critical_extensions == ("2.5.29.30",)
    leaf = _make(x509.Name([]), intermediate, ca=False)
    store = EKTrustStore((made["root"].cert,))
    code = _code(verify_ek_certificate, leaf.cert, store, intermediates=(intermediate.cert,), at=NOW)
    assert code == "unhandled-critical-extension"
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    for critical, expected in ((True, "unhandled-critical-extension"), (False, "ok")):
        leaf = _make(x509.Name([]), made["intermediate"], ca=False, extra=(odd, critical))
        chain = OracleCase("odd", leaf.cert, (made["root"].cert,), (made["intermediate"].cert,))
        assert _ours(chain, NOW) == expected


def test_unsupported_signature_algorithm(made: dict[str, Made]) -> None:
    ed_root = _make("Ed Root", None, key=ed25519.Ed25519PrivateKey.generate())
    leaf = _make(x509.Name([]), ed_root, ca=False)
    assert (
        _code(verify_ek_certificate, leaf.cert, EKTrustStore((ed_root.cert,)), at=NOW)
        == "unsupported-algorithm"
    )


def test_api_guards(made: dict[str, Made]) -> None:
    assert _code(EKTrustStore, ()) == "empty-trust-store"
    with pytest.raises(ValueError, match="timezone"):
        verify_ek_certificate(made["leaf"].cert, EKTrustStore((made["root"].cert,)), at=datetime(2025, 1, 1))
    assert issubclass(EKCertificateError, EvidenceError)
    assert corpus_root().is_dir()
