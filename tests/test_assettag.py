"""Asset tags: selections, SecL's tag certificates (corpus, round trip, byte-level format), verification,
the quote binding (also on a real swtpm) and the ASSET_TAG flavor.

Corpus: ``intel-secl/pkg/lib/flavor/test/resources/AssetTagpem.Cert`` (two tags, both named Country),
``RHELAssetTagFlavor.json`` (a Java HVS flavor around its CA certificate, not a tag certificate), and the
ASSET_TAG flavor in ``pkg/lib/verifier/test_data/UnknownVendor/signed_flavors.json`` (a Go HVS tag
certificate for 800012a7-…, tag state=TamilNadu) with that case's ``tag-cacerts.pem``.
openssl is the independent oracle for our certificates (verify, asn1parse) and for the binding's hashes.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from secl.core.assettag import (
    ASSET_TAG_NV_SIZE,
    MAX_NAME_BYTES,
    MAX_TAGS,
    MAX_VALUE_BYTES,
    TAG_OID,
    AssetTagError,
    Tag,
    TagCertificate,
    TagCertificateError,
    TagSelection,
    TagSelectionError,
    TagVerificationError,
    asset_tag_digest_from_nv,
    build_asset_tag_flavor,
    parse_asset_tag_flavor,
    parse_tag_certificate,
    parse_tag_selection,
    verify_tag_certificate,
)
from secl.core.errors import QuoteError
from secl.core.flavor import parse_flavor, parse_signed_flavors
from secl.core.hashalg import HashAlg
from secl.core.pcrevents import thaw
from secl.core.quote import secl_qualifying_data, verify_quote
from secl.core.tpm import load_ak_public
from secl.core.verifymemo import VerificationMemo
from secl.host.tpm import TPMAdapter
from tests.corpus import corpus_bytes
from tests.swtpm import RunningSwtpm
from tests.tag_ca import END, HOST, INSIDE, OTHER_HOST, START, TagCA, make_tag_ca

SECL_PEM = "intel-secl/pkg/lib/flavor/test/resources/AssetTagpem.Cert"
RHEL_FLAVOR = "intel-secl/pkg/lib/flavor/test/resources/RHELAssetTagFlavor.json"
VERIFIER = "intel-secl/pkg/lib/verifier/test_data"


@pytest.fixture(scope="module")
def tag_ca() -> TagCA:
    return make_tag_ca("ec")


@pytest.fixture(scope="module")
def rsa_tag_ca() -> TagCA:
    return make_tag_ca("rsa", "HVS Tag Certificate")


def openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (Debian package openssl)", pytrace=False)
    return subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60, check=False)


def secl_unknownvendor_flavor():
    flavors = parse_signed_flavors(corpus_bytes(f"{VERIFIER}/UnknownVendor/signed_flavors.json"))
    (signed,) = [f for f in flavors if f.flavor.flavor_part == "ASSET_TAG"]
    return signed.flavor


# --- SecL's certificates and flavors (corpus) ---


def test_secl_tag_certificate_with_a_repeated_name_parses() -> None:
    pem = corpus_bytes(SECL_PEM)
    cert = parse_tag_certificate(pem)
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert cert.der == der and cert.sha384 == hashlib.sha384(der).digest()
    assert cert.hardware_uuid == "803f6068-06da-e811-906e-00163566263e"
    assert cert.tags == (Tag("Country", "US"), Tag("Country", "India"))
    assert dict(cert.tag_map) == {"Country": "India"}  # SecL's rule JSON map: the last value wins
    assert cert.issuer == "CN=HVS Tag Certificate"
    assert (cert.not_before, cert.not_after) == (
        dt.datetime(2020, 7, 22, 17, 2, 35, tzinfo=dt.UTC),
        dt.datetime(2020, 7, 22, 17, 19, 15, tzinfo=dt.UTC),
    )
    assert parse_tag_certificate(der) == cert
    # Why the extensions are not read with pyca/cryptography: two tags are two extensions with one OID.
    with pytest.raises(x509.DuplicateExtension):
        _ = cert.certificate.extensions


def test_secl_asset_tag_flavor_and_its_certificate_agree() -> None:
    flavor = secl_unknownvendor_flavor()
    parsed = parse_asset_tag_flavor(flavor)
    cert = parsed.tag_certificate()
    section = flavor.external["asset_tag"]["tag_certificate"]
    assert parsed.sha384 == hashlib.sha384(base64.b64decode(section["encoded"])).digest() == cert.sha384
    assert (
        cert.hardware_uuid == parsed.hardware_uuid == parsed.subject == "800012a7-669d-e811-906e-00163566263e"
    )
    assert cert.tags == parsed.attributes == (Tag("state", "TamilNadu"),)
    assert (cert.issuer, cert.not_before, cert.not_after) == (
        parsed.issuer,
        parsed.not_before,
        parsed.not_after,
    )
    # Our rendering of SecL's certificate is SecL's JSON, member for member (serial: Go's Int64 of 128 bits).
    assert cert.to_secl_json() == thaw(section)


def test_rhel_asset_tag_flavor_wraps_a_ca_certificate_not_a_tag_certificate() -> None:
    parsed = parse_asset_tag_flavor(corpus_bytes(RHEL_FLAVOR))
    doc = json.loads(corpus_bytes(RHEL_FLAVOR))
    der = base64.b64decode(doc["external"]["asset_tag"]["tag_certificate"]["encoded"])
    assert parsed.sha384.hex() == hashlib.sha384(der).hexdigest() == doc["external"]["asset_tag"]["tag_certificate"]["fingerprint_sha384"]  # fmt: skip
    assert parsed.hardware_uuid == "MTWILSON-CA" and parsed.issuer == parsed.subject == "mtwilson-ca"
    assert parsed.not_before == dt.datetime(2020, 5, 1, 17, 41, 7, tzinfo=dt.UTC)
    with pytest.raises(TagCertificateError) as err:
        parsed.tag_certificate()
    assert err.value.code == "tag-certificate-no-tags"


@pytest.mark.parametrize("case", ["UnknownVendor", "vmware12"])
def test_secl_tag_certificate_is_not_from_the_corpus_tag_ca(case: str) -> None:
    # The case's tag-cacerts.pem is "CN=asset-tag-service"; the flavor's certificate names "CN=HVS Tag Certificate".
    cas = tuple(x509.load_pem_x509_certificates(corpus_bytes(f"{VERIFIER}/{case}/tag-cacerts.pem")))
    cert = parse_asset_tag_flavor(secl_unknownvendor_flavor()).tag_certificate()
    assert cas[0].subject.rfc4514_string() == "CN=asset-tag-service"
    with pytest.raises(TagVerificationError) as err:
        verify_tag_certificate(cert, cas, at=dt.datetime(2021, 6, 1, tzinfo=dt.UTC))
    assert (err.value.code, err.value.fault_name) == ("tag-certificate-untrusted", "TagCertificateNotTrusted")


def test_our_certificate_for_secl_inputs_is_secls_certificate_but_for_the_key(rsa_tag_ca: TagCA) -> None:
    secl = parse_asset_tag_flavor(secl_unknownvendor_flavor()).tag_certificate()
    ours = rsa_tag_ca.issue(
        TagSelection(secl.tags),
        hardware_uuid=secl.hardware_uuid.upper(),
        not_before=secl.not_before,
        not_after=secl.not_after,
        serial_number=secl.serial_number,
    )
    assert dataclasses.replace(ours, der=secl.der, sha384=secl.sha384) == secl
    a = ax509.Certificate.load(ours.der)
    b = ax509.Certificate.load(secl.der)
    for name in ("version", "serial_number", "signature", "issuer", "validity", "subject", "extensions"):
        assert a["tbs_certificate"][name].dump() == b["tbs_certificate"][name].dump(), name
    assert a["signature_algorithm"].dump() == b["signature_algorithm"].dump()
    assert ours.to_secl_json()["serial_number"] == secl.to_secl_json()["serial_number"]


# --- Our certificates ---


def _extension_octets(der: bytes) -> list[bytes]:
    """The 2.5.4.789.1 extension values, read by openssl asn1parse (not by our code)."""
    out = openssl("asn1parse", "-inform", "DER", data=der)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    values = []
    for i, line in enumerate(lines):
        if line.rstrip().endswith(":2.5.4.789.1"):
            values.append(bytes.fromhex(re.search(r"\[HEX DUMP\]:([0-9A-F]+)", lines[i + 1])[1]))
    return values


def _kv(name: bytes, value: bytes, name_tag: int = 0x13, value_tag: int = 0x13) -> bytes:
    body = bytes([name_tag, len(name)]) + name + bytes([value_tag, len(value)]) + value
    return bytes([0x30, len(body)]) + body


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_issued_certificate_verifies_with_openssl_and_carries_secls_encoding(
    kind: str, tmp_path: Path
) -> None:
    ca = make_tag_ca(kind)
    selection = TagSelection.of([("country", "DE"), ("city", "Zürich"), ("owner", "R&D")])
    cert = ca.issue(selection)
    (tmp_path / "ca.pem").write_bytes(ca.pem())
    (tmp_path / "tag.pem").write_text(cert.pem())
    at = str(int(INSIDE.timestamp()))
    assert openssl("verify", "-CAfile", str(tmp_path / "ca.pem"), "-attime", at, str(tmp_path / "tag.pem")).returncode == 0  # fmt: skip
    other = make_tag_ca(kind)
    (tmp_path / "other.pem").write_bytes(other.pem())
    assert openssl("verify", "-CAfile", str(tmp_path / "other.pem"), "-attime", at, str(tmp_path / "tag.pem")).returncode != 0  # fmt: skip
    subject = openssl("x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", str(tmp_path / "tag.pem"))
    assert subject.stdout.decode().strip() == f"subject=CN={HOST}"
    # PrintableString (0x13) when every character allows it, else UTF8String (0x0C): '&' and 'ü' do not.
    assert _extension_octets(cert.der) == [
        _kv(b"country", b"DE"),
        _kv(b"city", "Zürich".encode(), value_tag=0x0C),
        _kv(b"owner", b"R&D", value_tag=0x0C),
    ]
    assert cert.certificate.signature_hash_algorithm.name == "sha384"
    assert cert.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == ca.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_issue_parse_round_trip(tag_ca: TagCA) -> None:
    selection = TagSelection.of({"country": "DE", "rack": "R12", "compliance": "PCI-DSS"})
    serial = x509.random_serial_number()
    cert = tag_ca.issue(selection, serial_number=serial, not_before=START + dt.timedelta(microseconds=7))
    assert (cert.hardware_uuid, cert.tags, cert.serial_number) == (HOST, selection.tags, serial)
    assert (cert.not_before, cert.not_after) == (START, END)
    assert cert.issuer == tag_ca.certificate.subject.rfc4514_string() == "CN=secl Tag CA,O=secl"
    assert cert.sha384 == hashlib.sha384(cert.der).digest()
    assert parse_tag_certificate(cert.der) == cert == parse_tag_certificate(cert.pem())
    assert (
        verify_tag_certificate(cert.der, [tag_ca.certificate], at=INSIDE, hardware_uuid=HOST.upper()) == cert
    )


# --- Verification failures, each named ---


def _fails(cert: TagCertificate | bytes, cas: list[x509.Certificate], **kwargs) -> tuple[str, str]:
    with pytest.raises(TagVerificationError) as err:
        verify_tag_certificate(cert, cas, **{"at": INSIDE, **kwargs})
    return err.value.code, err.value.fault_name


def test_verification_failures_are_named(tag_ca: TagCA) -> None:
    cert = tag_ca.issue()
    cas = [tag_ca.certificate]
    assert _fails(cert, [make_tag_ca().certificate]) == (
        "tag-certificate-untrusted",
        "TagCertificateNotTrusted",
    )
    assert _fails(cert, []) == ("tag-certificate-untrusted", "TagCertificateNotTrusted")
    assert _fails(cert, cas, at=END + dt.timedelta(seconds=1)) == (
        "tag-certificate-expired",
        "TagCertificateExpired",
    )
    assert _fails(cert, cas, at=START - dt.timedelta(seconds=1)) == ("tag-certificate-not-yet-valid", "TagCertificateNotYetValid")  # fmt: skip
    assert _fails(cert, cas, hardware_uuid=OTHER_HOST) == (
        "tag-certificate-wrong-host",
        "TagCertificateNotTrusted",
    )
    # The boundaries themselves are inside.
    assert verify_tag_certificate(cert, cas, at=END) == verify_tag_certificate(cert, cas, at=START)


def test_tampered_certificate_is_untrusted(tag_ca: TagCA) -> None:
    cert = tag_ca.issue(TagSelection.of({"country": "DE"}))
    forged_tag = cert.der.replace(b"\x13\x02DE", b"\x13\x02FR")
    assert forged_tag != cert.der and parse_tag_certificate(forged_tag).tag_map == {"country": "FR"}
    assert _fails(forged_tag, [tag_ca.certificate]) == (
        "tag-certificate-untrusted",
        "TagCertificateNotTrusted",
    )
    signature = cert.certificate.signature
    flipped = cert.der[: -len(signature)] + signature[:-1] + bytes([signature[-1] ^ 1])
    assert _fails(flipped, [tag_ca.certificate]) == ("tag-certificate-untrusted", "TagCertificateNotTrusted")


def test_expired_tag_ca_does_not_vouch(tag_ca: TagCA) -> None:
    short = make_tag_ca(not_before=START, not_after=INSIDE)
    cert = short.issue(not_after=INSIDE)
    assert verify_tag_certificate(cert, [short.certificate], at=INSIDE)
    renewed = TagCA(make_tag_ca().certificate, short.key)  # another CA certificate: another subject
    assert _fails(cert, [renewed.certificate], at=INSIDE) == (
        "tag-certificate-untrusted",
        "TagCertificateNotTrusted",
    )
    with pytest.raises(AssetTagError) as err:
        verify_tag_certificate(cert, [short.certificate], at=dt.datetime(2024, 6, 1))  # naive
    assert err.value.code == "asset-tag-time-invalid"


def test_expired_issuer_at_the_instant_is_untrusted() -> None:
    ca = make_tag_ca(not_before=START, not_after=END)
    cert = ca.issue(not_after=END)
    assert _fails(cert, [ca.certificate], at=END + dt.timedelta(days=1))[0] == "tag-certificate-untrusted"


# --- Issuing: bad inputs ---


def test_issuing_refuses_bad_inputs(tag_ca: TagCA) -> None:
    def code(**changes) -> str:
        with pytest.raises(AssetTagError) as err:
            tag_ca.issue(**changes)
        return err.value.code

    assert code(ca_key=ec.generate_private_key(ec.SECP384R1())) == "tag-ca-key-mismatch"
    assert code(ca_key=ed25519.Ed25519PrivateKey.generate()) == "tag-ca-key-unsupported"
    leaf = make_tag_ca(ca=False)
    assert code(ca_certificate=leaf.certificate, ca_key=leaf.key) == "tag-ca-invalid"
    assert code(not_after=START) == "tag-certificate-validity-invalid"
    assert code(not_before=dt.datetime(2024, 1, 1)) == "tag-certificate-validity-invalid"
    assert code(not_after=dt.datetime(2041, 1, 1, tzinfo=dt.UTC)) == "tag-certificate-validity-invalid"
    for serial in (0, -5, 1 << 159, True):
        assert code(serial_number=serial) == "tag-certificate-serial-invalid"
    for bad in ("not-a-uuid", "{" + HOST + "}", HOST.replace("-", ""), str(uuid.UUID(int=0)), 42):
        assert code(hardware_uuid=bad) == "hardware-uuid-invalid"
    assert code(selection=[Tag("country", "DE")]) == "tag-selection-malformed"


# --- Reading: bad certificates ---


def _plain_cert(ca: TagCA, subject: str, extensions: list[tuple[x509.ExtensionType, bool]]) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(ca.certificate.subject)
        .public_key(ca.key.public_key())
        .serial_number(7)
        .not_valid_before(START)
        .not_valid_after(END)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(ca.key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)


def test_unreadable_certificates_are_named(tag_ca: TagCA) -> None:
    tag = x509.UnrecognizedExtension(x509.ObjectIdentifier(TAG_OID), _kv(b"country", b"DE"))
    assert parse_tag_certificate(_plain_cert(tag_ca, HOST, [(tag, False)])).tag_map == {"country": "DE"}
    cases = {
        "tag-certificate-no-tags": _plain_cert(tag_ca, HOST, []),
        "tag-certificate-subject-invalid": _plain_cert(tag_ca, "host1.example.com", [(tag, False)]),
        "tag-certificate-critical-extension": _plain_cert(
            tag_ca,
            HOST,
            [(tag, False), (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), True)],
        ),
        "tag-certificate-malformed": b"\x30\x03\x02\x01\x05",
    }
    for bad_value in (
        b"\x02\x01\x05",
        _kv(b"country", b"")[:-1],
        _kv(b"co\x01", b"DE"),
        _kv(b"\xff", b"DE", name_tag=0x0C),
    ):
        ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(TAG_OID), bad_value)
        cases[f"tag-certificate-malformed {bad_value.hex()}"] = _plain_cert(tag_ca, HOST, [(ext, False)])
    for name, der in cases.items():
        with pytest.raises(TagCertificateError) as err:
            parse_tag_certificate(der)
        assert err.value.code == name.split()[0], name
    pem = tag_ca.issue().pem()
    for data, code in (
        (pem + pem, "tag-certificate-malformed"),
        (b"\x00" * 70_000, "tag-certificate-malformed"),
    ):
        with pytest.raises(TagCertificateError) as err:
            parse_tag_certificate(data)
        assert err.value.code == code


# --- Selections ---

VALID_LIMITS = TagSelection(
    tuple(Tag(f"n{i:02d}" + "x" * (MAX_NAME_BYTES - 3), "v" * MAX_VALUE_BYTES) for i in range(MAX_TAGS))
)


@pytest.mark.parametrize(
    ("selection", "code"),
    [
        ("[]", "tag-selection-empty"),
        (
            json.dumps([{"name": f"n{i}", "value": "v"} for i in range(MAX_TAGS + 1)]),
            "tag-selection-too-many",
        ),
        ('[{"name": "", "value": "DE"}]', "tag-name-empty"),
        ('[{"name": "country", "value": ""}]', "tag-value-empty"),
        (json.dumps([{"name": "n" * (MAX_NAME_BYTES + 1), "value": "v"}]), "tag-name-too-long"),
        (json.dumps([{"name": "€" * 22, "value": "v"}]), "tag-name-too-long"),  # 66 bytes of UTF-8
        (json.dumps([{"name": "n", "value": "v" * (MAX_VALUE_BYTES + 1)}]), "tag-value-too-long"),
        ('[{"name": "Country", "value": "DE"}, {"name": "country", "value": "FR"}]', "tag-name-duplicate"),
        ('[{"name": "country", "value": "DE"}, {"name": "country", "value": "DE"}]', "tag-name-duplicate"),
        ('[{"name": "a=b", "value": "DE"}]', "tag-name-invalid"),
        ('[{"name": "country", "value": "D\\u0000E"}]', "tag-text-control-character"),
        ('[{"name": "coun\\ttry", "value": "DE"}]', "tag-text-control-character"),
        ('[{"name": "country", "value": "\\u202eED"}]', "tag-text-control-character"),
        ('[{"name": "country", "value": "D\\u2028E"}]', "tag-text-control-character"),
        ('[{"name": " country", "value": "DE"}]', "tag-text-whitespace"),
        ('[{"name": "city", "value": "Zu\\u0308rich"}]', "tag-text-not-normalized"),
        ('[{"name": "city", "value": "\\udc80"}]', "tag-text-not-utf8"),
        ('[{"name": "country", "value": "DE", "extra": 1}]', "tag-selection-malformed"),
        ('[{"name": "country"}]', "tag-selection-malformed"),
        ('[{"name": "country", "value": 49}]', "tag-selection-malformed"),
        ('["country=DE"]', "tag-selection-malformed"),
        ('{"name": "country", "value": "DE"}', "tag-selection-malformed"),
        ("[{", "tag-selection-malformed"),
    ],
)
def test_bad_selections_are_named(selection: str, code: str) -> None:
    with pytest.raises(TagSelectionError) as err:
        parse_tag_selection(selection)
    assert err.value.code == code


def test_good_selections() -> None:
    doc = '[{"name": "country", "value": "DE"}, {"name": "city", "value": "Zürich"}]'
    selection = parse_tag_selection(doc.encode())
    assert selection.to_json() == json.loads(doc)
    assert selection.as_dict() == {"country": "DE", "city": "Zürich"} == dict(TagSelection.of(selection.as_dict()).as_dict())  # fmt: skip
    assert parse_tag_selection(VALID_LIMITS.to_json()) == VALID_LIMITS
    with pytest.raises(TagSelectionError) as err:
        parse_tag_selection([{"name": b"\xffcountry", "value": "DE"}])
    assert err.value.code == "tag-text-not-utf8"
    with pytest.raises(TagSelectionError) as err:
        TagSelection((Tag(b"country", "DE"),))  # type: ignore[arg-type]
    assert err.value.code == "tag-selection-malformed"


def test_selection_at_the_limits_makes_a_certificate(tag_ca: TagCA) -> None:
    cert = tag_ca.issue(VALID_LIMITS)
    assert cert.tags == VALID_LIMITS.tags and len(cert.der) < 25_000


# --- The quote binding ---


def _sha256_openssl(data: bytes) -> bytes:
    out = openssl("dgst", "-sha256", "-binary", data=data)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_qualifying_data_is_secls_binding(tag_ca: TagCA) -> None:
    nonce = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4")  # SecL's HVS sends 20 random bytes
    digest = tag_ca.issue().sha384
    assert secl_qualifying_data(nonce) == _sha256_openssl(nonce)
    assert secl_qualifying_data(nonce, digest) == _sha256_openssl(_sha256_openssl(nonce) + digest)
    assert secl_qualifying_data(nonce, digest) != secl_qualifying_data(nonce)


def test_nv_index_contents() -> None:
    digest = hashlib.sha384(b"tag").digest()
    assert asset_tag_digest_from_nv(digest) == digest
    assert asset_tag_digest_from_nv(bytes(ASSET_TAG_NV_SIZE)) is None
    for bad in (digest[:-1], digest + b"\x00", b"", "00" * 48):
        with pytest.raises(AssetTagError) as err:
            asset_tag_digest_from_nv(bad)  # type: ignore[arg-type]
        assert err.value.code == "asset-tag-nv-invalid"


@pytest.mark.swtpm
def test_swtpm_quote_binds_the_tag_digest(swtpm: RunningSwtpm, tag_ca: TagCA) -> None:
    nonce = b"\x5e\xc1" * 10
    cert, other = tag_ca.issue(), tag_ca.issue(TagSelection.of({"country": "FR"}))
    selection = {HashAlg.SHA256: [0, 7]}
    with TPMAdapter(swtpm.tcti) as tpm:
        ak = tpm.create_ak("ecc")
        quote = tpm.quote(ak, selection, secl_qualifying_data(nonce, cert.sha384))
        pcrs = tpm.read_pcrs(selection)
        tpm.flush(ak)
    akp = load_ak_public(ak.public)
    verified = verify_quote(akp, quote.attest, quote.signature, qualifying_data=secl_qualifying_data(nonce, cert.sha384), pcrs=pcrs)  # fmt: skip
    assert verified.pcrs is not None
    for wrong in (secl_qualifying_data(nonce), secl_qualifying_data(nonce, other.sha384)):
        with pytest.raises(QuoteError) as err:
            verify_quote(akp, quote.attest, quote.signature, qualifying_data=wrong, pcrs=pcrs)
        assert err.value.code == "quote-nonce-mismatch"


# --- The ASSET_TAG flavor ---

HOST_INFO = {
    "host_name": "host1.example.com",
    "hardware_uuid": HOST.upper(),
    "bios_name": "EFI Development Kit II / OVMF ",
    "bios_version": "0.0.0",
    "tboot_installed": "false",
    "hardware_features": {"TPM": {"enabled": True, "meta": {"tpm_version": "2.0"}}},
}


def test_built_flavor_has_secls_shape_and_parses_back(tag_ca: TagCA) -> None:
    cert = tag_ca.issue()
    now = dt.datetime(2024, 2, 3, 4, 5, 6, 789, tzinfo=dt.UTC)
    flavor_id = uuid.UUID(int=0x1234)
    flavor = build_asset_tag_flavor(cert, host_info=HOST_INFO, now=now, new_id=lambda: flavor_id)
    doc = flavor.to_json()
    assert doc["meta"] == {
        "id": str(flavor_id),
        "description": {
            "flavor_part": "ASSET_TAG",
            "tboot_installed": False,
            "tpm_version": "2.0",
            "source": "host1.example.com",
            "hardware_uuid": HOST,
            "label": f"INTEL_{HOST}_2024-02-03T04:05:06.000789+00:00",
        },
        "vendor": "INTEL",
    }
    assert doc["bios"] == {"bios_name": "EFI Development Kit II / OVMF", "bios_version": "0.0.0"}
    section = doc["external"]["asset_tag"]["tag_certificate"]
    assert section == cert.to_secl_json()
    assert base64.b64decode(section["encoded"]) == cert.der
    assert section["fingerprint_sha384"] == hashlib.sha384(cert.der).hexdigest()
    again = parse_asset_tag_flavor(json.dumps(doc))
    assert again.tag_certificate() == cert and again.attributes == cert.tags and again.hardware_uuid == HOST
    assert (again.not_before, again.not_after, again.issuer) == (cert.not_before, cert.not_after, cert.issuer)
    bare = build_asset_tag_flavor(cert, now=now).to_json()
    assert "bios" not in bare and set(bare["meta"]["description"]) == {
        "flavor_part",
        "hardware_uuid",
        "label",
    }


def test_flavor_for_another_host_is_refused(tag_ca: TagCA) -> None:
    with pytest.raises(TagVerificationError) as err:
        build_asset_tag_flavor(tag_ca.issue(), host_info={**HOST_INFO, "hardware_uuid": OTHER_HOST})
    assert err.value.code == "tag-certificate-wrong-host"


def test_bad_asset_tag_flavors_are_named(tag_ca: TagCA) -> None:
    good = build_asset_tag_flavor(tag_ca.issue()).to_json()

    def code(mutate) -> str:
        doc = json.loads(json.dumps(good))
        mutate(doc)
        with pytest.raises(AssetTagError) as err:
            parse_asset_tag_flavor(doc)
        return err.value.code

    section = ("external", "asset_tag", "tag_certificate")

    def set_in(key, value):
        def mutate(doc):
            target = doc
            for k in section:
                target = target[k]
            target[key] = value

        return mutate

    assert code(set_in("fingerprint_sha384", "00" * 48)) == "asset-tag-flavor-fingerprint-mismatch"
    assert code(set_in("encoded", "not base64!")) == "asset-tag-flavor-invalid"
    assert code(set_in("not_before", "yesterday")) == "asset-tag-flavor-invalid"
    assert code(set_in("serial_number", "12")) == "asset-tag-flavor-invalid"
    assert code(set_in("attribute", [{"attr_type": {"id": TAG_OID}}])) == "asset-tag-flavor-invalid"
    assert code(lambda doc: doc.pop("external")) == "asset-tag-flavor-invalid"
    assert (
        code(lambda doc: doc["meta"]["description"].update(flavor_part="PLATFORM"))
        == "asset-tag-flavor-invalid"
    )
    assert (
        code(lambda doc: doc["meta"]["description"].update(flavor_part="NOPE")) == "asset-tag-flavor-invalid"
    )
    assert parse_asset_tag_flavor(parse_flavor(good)).tag_certificate().hardware_uuid == HOST


def test_times_from_2050_are_generalized_time() -> None:
    ca = make_tag_ca(not_after=dt.datetime(2060, 1, 1, tzinfo=dt.UTC))
    start, end = dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC), dt.datetime(2050, 1, 1, tzinfo=dt.UTC)
    cert = ca.issue(not_before=start, not_after=end)
    validity = ax509.Certificate.load(cert.der)["tbs_certificate"]["validity"]
    assert (validity["not_before"].name, validity["not_after"].name) == ("utc_time", "general_time")
    assert (cert.not_before, cert.not_after) == (start, end)
    assert cert.to_secl_json()["not_after"] == "2050-01-01T00:00:00Z"


def test_tag_ca_without_certificate_signing_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not a CA")])
    usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(START).not_valid_after(END)
        .add_extension(usage, critical=True).sign(key, hashes.SHA384())
    )  # fmt: skip
    with pytest.raises(TagCertificateError) as err:
        TagCA(cert, key).issue()
    assert err.value.code == "tag-ca-invalid"


def test_memo_remembers_only_signatures_that_verified(tag_ca: TagCA) -> None:
    memo = VerificationMemo()
    cert = tag_ca.issue(TagSelection.of({"country": "DE"}))
    for _ in range(2):
        assert verify_tag_certificate(cert, [tag_ca.certificate], at=INSIDE, memo=memo) == cert
    assert len(memo) == 1
    forged = cert.der.replace(b"\x13\x02DE", b"\x13\x02FR")
    assert _fails(forged, [tag_ca.certificate], memo=memo)[0] == "tag-certificate-untrusted"
    # The memo never lets validity go unchecked.
    assert (
        _fails(cert, [tag_ca.certificate], memo=memo, at=END + dt.timedelta(days=1))[0]
        == "tag-certificate-expired"
    )
    assert len(memo) == 1


def test_every_corrupted_byte_is_a_named_error_or_a_certificate(tag_ca: TagCA) -> None:
    der = tag_ca.issue(TagSelection.of({"country": "DE", "city": "Zürich"})).der
    outcomes = set()
    for i in range(len(der)):
        for corrupt in (der[:i] + bytes([der[i] ^ 0xFF]) + der[i + 1 :], der[:i]):
            try:
                parsed = parse_tag_certificate(corrupt)
            except TagCertificateError as exc:
                outcomes.add(exc.code)
                continue
            # A corruption that still parses (e.g. inside the signature) must not verify.
            with pytest.raises(TagVerificationError):
                verify_tag_certificate(parsed, [tag_ca.certificate], at=INSIDE)
            outcomes.add("parsed")
    assert {"tag-certificate-malformed", "parsed"} <= outcomes
