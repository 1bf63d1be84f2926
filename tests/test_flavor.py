"""SecL flavors: lossless round trip of the corpus flavors, our signatures, and SecL's signatures."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from secl.core.flavor import FlavorError, parse_flavor, parse_signed_flavor, parse_signed_flavors
from secl.core.flavorsign import (
    NIL_UUID,
    FlavorSignatureError,
    check_secl_signature,
    flavor_signing_payload,
    sign_flavor,
    verify_flavor_signature,
)
from tests.corpus import corpus_bytes

VERIFIER = "intel-secl/pkg/lib/verifier/test_data"
CASES = ("UnknownVendor", "vmware12")


def _signer_cert(case: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(corpus_bytes(f"{VERIFIER}/{case}/flavor-signer.crt.pem"))[0]


@pytest.mark.parametrize("case", CASES)
def test_corpus_signed_flavors_round_trip_exactly(case: str) -> None:
    raw = json.loads(corpus_bytes(f"{VERIFIER}/{case}/signed_flavors.json"))
    parsed = parse_signed_flavors(corpus_bytes(f"{VERIFIER}/{case}/signed_flavors.json"))
    assert [p.to_json() for p in parsed] == raw
    # Member order survives too, which matters for anything that hashes the JSON as written.
    assert [json.dumps(p.flavor.to_json()) for p in parsed] == [json.dumps(r["flavor"]) for r in raw]


@pytest.mark.parametrize("name", ["PfFlavor.json", "RHELAssetTagFlavor.json"])
def test_other_corpus_flavors_round_trip(name: str) -> None:
    raw = json.loads(corpus_bytes(f"intel-secl/pkg/lib/flavor/test/resources/{name}"))
    assert parse_flavor(raw).to_json() == raw


def test_model_exposes_what_rules_use() -> None:
    flavors = parse_signed_flavors(corpus_bytes(f"{VERIFIER}/vmware12/signed_flavors.json"))
    os_flavor = next(f.flavor for f in flavors if f.flavor.flavor_part == "OS")
    pcr19 = next(p for p in os_flavor.pcrs or () if p.pcr.index == 19)
    assert pcr19.pcr.bank == "SHA1" and pcr19.pcr_matches is True
    assert pcr19.eventlog_equals is not None and len(pcr19.eventlog_equals.events) == 86
    assert "commandLine." in (pcr19.eventlog_equals.exclude_tags or ())


def test_unknown_vendor_flavors_are_accepted() -> None:
    # SecL's Go HVS refuses this file: its Vendor type only unmarshals INTEL/VMWARE/MICROSOFT, and every flavor
    # here says "vendor": "UNKNOWN" (the Java HVS wrote that and resolved the vendor from the host's OS).
    # We keep the value as written; trustreport.resolve_vendor derives the vendor from the host, as Java did.
    flavors = parse_signed_flavors(corpus_bytes(f"{VERIFIER}/UnknownVendor/signed_flavors.json"))
    assert {f.flavor.meta.vendor for f in flavors} == {"UNKNOWN"}
    assert [f.flavor.flavor_part for f in flavors] == [
        "PLATFORM",
        "OS",
        "HOST_UNIQUE",
        "SOFTWARE",
        "SOFTWARE",
        "ASSET_TAG",
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"meta": {"id": "x", "description": {"flavor_part": "BIOS"}}}', "flavor_part"),
        ('{"meta": {"id": "x", "id": "y", "description": {"flavor_part": "OS"}}}', "duplicate member 'id'"),
        (
            '{"meta": {"id": "x", "description": {"flavor_part": "OS"}}, "pcrs": [{"pcr": {"index": 24, "bank": "SHA1"}}]}',
            "outside 0..23",
        ),
        (
            '{"meta": {"id": "x", "description": {"flavor_part": "OS"}}, "pcrs": [{"pcr": {"index": 1, "bank": "MD5"}}]}',
            "unsupported PCR bank",
        ),
        (
            '{"meta": {"id": "x", "description": {"flavor_part": "OS"}}, "pcrs": [{"pcr": {"index": 1, "bank": "SHA1"}, "measurement": "00", "pcr_matches": "yes"}]}',
            "pcr_matches",
        ),
        ('{"meta": {"id": "x", "description": {"flavor_part": "OS"}}, "x": NaN}', "NaN"),
        ("[1,", "not valid JSON"),
        ('{"bios": {}}', "meta section is missing"),
    ],
)
def test_malformed_flavors_are_named_errors(text: str, fragment: str) -> None:
    with pytest.raises(FlavorError) as info:
        parse_flavor(text)
    assert fragment in str(info.value)


def _a_flavor():
    return parse_signed_flavors(corpus_bytes(f"{VERIFIER}/UnknownVendor/signed_flavors.json"))[0].flavor


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP384R1()),
        ec.generate_private_key(ec.SECP256R1()),
        rsa.generate_private_key(65537, 3072),
    ],
    ids=["P-384", "P-256", "RSA-3072"],
)
def test_sign_then_verify(key) -> None:
    signed = sign_flavor(_a_flavor(), key)
    assert signed.to_json()["signature_scheme"] == "jcs-nil-id/v1"
    verify_flavor_signature(signed, key.public_key())
    # The envelope survives JSON and parsing.
    again = parse_signed_flavor(json.dumps(signed.to_json()))
    verify_flavor_signature(again, key.public_key())


def test_signature_ignores_meta_id_but_covers_everything_else() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    signed = sign_flavor(_a_flavor(), key)
    renamed = dataclasses.replace(
        signed,
        flavor=dataclasses.replace(signed.flavor, meta=dataclasses.replace(signed.flavor.meta, id="1" * 8)),
    )
    verify_flavor_signature(renamed, key.public_key())
    assert b'"id":"' + NIL_UUID.encode() + b'"' in flavor_signing_payload(signed.flavor)

    doc = signed.to_json()
    doc["flavor"]["pcrs"][0]["measurement"] = "00" * 32
    with pytest.raises(FlavorSignatureError, match="does not verify"):
        verify_flavor_signature(parse_signed_flavor(doc), key.public_key())
    with pytest.raises(FlavorSignatureError, match="does not verify"):
        verify_flavor_signature(signed, ec.generate_private_key(ec.SECP384R1()).public_key())


def test_missing_signature_and_foreign_scheme_are_refused() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    signed = sign_flavor(_a_flavor(), key)
    with pytest.raises(FlavorSignatureError) as info:
        verify_flavor_signature(dataclasses.replace(signed, signature=""), key.public_key())
    assert info.value.code == "flavor-signature-missing"
    secl = parse_signed_flavors(corpus_bytes(f"{VERIFIER}/UnknownVendor/signed_flavors.json"))[0]
    with pytest.raises(FlavorSignatureError, match="check_secl_signature"):
        verify_flavor_signature(secl, _signer_cert("UnknownVendor"))


@pytest.mark.parametrize("case", CASES)
def test_secl_java_signatures_are_reported_unverifiable(case: str) -> None:
    # INDEX: the Java HVS signed its own serialization. We try the compact JSON as read (with the original and
    # the nil id) and JCS, with PKCS#1 v1.5 and PSS over SHA-384/256. None verifies; and the raw RSA operation
    # with flavor-signer.crt.pem's key shows why: no PKCS#1/PSS encoding comes out, so the corpus's signer
    # certificate is not the key that made these signatures.
    cert = _signer_cert(case)
    for signed in parse_signed_flavors(corpus_bytes(f"{VERIFIER}/{case}/signed_flavors.json")):
        check = check_secl_signature(signed, cert)
        assert check.status == "unverifiable"
        assert check.detail.startswith("signature does not match any reproducible serialization")
        assert "not made with this key" in check.detail


def test_secl_style_signature_over_the_document_as_read_verifies() -> None:
    # What check_secl_signature would accept: RSA PKCS#1 v1.5 SHA-384 over the compact JSON as it was read.
    key = rsa.generate_private_key(65537, 3072)
    raw = json.loads(corpus_bytes(f"{VERIFIER}/vmware12/signed_flavors.json"))[1]
    compact = json.dumps(raw["flavor"], separators=(",", ":"), ensure_ascii=False).encode()
    raw["signature"] = base64.b64encode(key.sign(compact, padding.PKCS1v15(), hashes.SHA384())).decode()
    check = check_secl_signature(parse_signed_flavor(raw), key.public_key())
    assert check.verified and check.serialization == "compact JSON as read, original id"
