"""The ASSET_TAG rules (TagCertificateTrusted, AssetTagMatches) through the verifier's rule factory.

The host is the corpus's UnknownVendor manifest (SecL Java HVS), re-labelled with our hardware UUID and the
asset-tag digest it reports; flavors are built from tag certificates our Tag CA issues.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json

import pytest
from cryptography import x509

from secl.core.assettag import build_asset_tag_flavor
from secl.core.flavor import parse_flavor, parse_signed_flavors
from secl.core.hostmanifest import HostManifest, parse_host_manifest
from secl.core.pcrevents import freeze
from secl.core.rules import FaultName, RuleName
from secl.core.rules_assettag import AssetTagMatches, TagCertificateTrusted, tag_certificate_der
from secl.core.trustreport import TrustAnchors, evaluate_flavor
from tests.corpus import corpus_bytes
from tests.tag_ca import END, HOST, INSIDE, OTHER_HOST, START, TagCA, make_tag_ca

CASE = "intel-secl/pkg/lib/verifier/test_data/UnknownVendor"


@pytest.fixture(scope="module")
def tag_ca() -> TagCA:
    return make_tag_ca("ec")


def host(digest: bytes | None, hardware_uuid: str = HOST) -> HostManifest:
    manifest = parse_host_manifest(corpus_bytes(f"{CASE}/host_manifest.json"))
    info = freeze({**manifest.host_info, "hardware_uuid": hardware_uuid.upper()})
    return dataclasses.replace(manifest, host_info=info, asset_tag_digest=digest)


def anchors(tag_ca: TagCA, at: dt.datetime = INSIDE) -> TrustAnchors:
    return TrustAnchors(at=at, tag_cas=(tag_ca.certificate,), check_flavor_signatures=False)


def faults(verdict) -> dict[str, list[str]]:
    return {r.rule_name: [f.name for f in r.faults] for r in verdict.results}


def test_deployed_tag_is_trusted_with_secls_rules_and_json(tag_ca: TagCA) -> None:
    cert = tag_ca.issue()
    flavor = build_asset_tag_flavor(cert, now=START)
    verdict = evaluate_flavor(flavor, host(cert.sha384), anchors(tag_ca))
    assert verdict.trusted and verdict.policy_name == "Intel Host Trust Policy"
    assert [r.rule_name for r in verdict.results] == [
        RuleName.TAG_CERTIFICATE_TRUSTED,
        RuleName.ASSET_TAG_MATCHES,
    ]
    matches = verdict.results[1].to_json()
    assert matches["rule"]["rule_name"] == "com.intel.mtwilson.core.verifier.policy.rule.AssetTagMatches"
    assert matches["rule"]["markers"] == ["ASSET_TAG"]
    assert matches["rule"]["tags"] == {"country": "DE", "rack": "R12"}
    assert matches["rule"]["expected_tag"] == base64.b64encode(hashlib.sha384(cert.der).digest()).decode()
    assert matches["trusted"] is True and matches["flavor_id"] == flavor.id


# SecL's order and names (pkg/lib/verifier/rules/asset_tag_matches.go): the host's digest is looked at first.
@pytest.mark.parametrize(
    ("reported", "flavor_has_cert", "expected"),
    [
        (None, True, [FaultName.ASSET_TAG_MISSING]),
        (b"", True, [FaultName.ASSET_TAG_MISSING]),
        ("other", True, [FaultName.ASSET_TAG_MISMATCH]),
        ("same", False, [FaultName.ASSET_TAG_NOT_PROVISIONED]),
        (None, False, [FaultName.ASSET_TAG_MISSING]),
        ("same", True, []),
    ],
)
def test_asset_tag_matches_faults(
    tag_ca: TagCA, reported, flavor_has_cert: bool, expected: list[str]
) -> None:
    cert = tag_ca.issue()
    digest = {"same": cert.sha384, "other": hashlib.sha384(b"another certificate").digest()}.get(
        reported, reported
    )
    result = AssetTagMatches(cert.der if flavor_has_cert else None, "ASSET_TAG").apply(host(digest))
    assert [f.name for f in result.faults] == expected
    if expected == [FaultName.ASSET_TAG_MISMATCH]:
        (fault,) = result.faults
        assert (fault.expected_value, fault.actual_value) == (cert.sha384.hex(), digest.hex())


def test_overwritten_nv_index_is_asset_tag_mismatch(tag_ca: TagCA) -> None:
    cert, other = tag_ca.issue(), tag_ca.issue(hardware_uuid=OTHER_HOST)
    verdict = evaluate_flavor(build_asset_tag_flavor(cert), host(other.sha384), anchors(tag_ca))
    assert faults(verdict) == {
        RuleName.TAG_CERTIFICATE_TRUSTED: [],
        RuleName.ASSET_TAG_MATCHES: ["AssetTagMismatch"],
    }
    assert not verdict.trusted


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("expired", FaultName.TAG_CERTIFICATE_EXPIRED),
        ("not yet valid", FaultName.TAG_CERTIFICATE_NOT_YET_VALID),
        ("other CA", FaultName.TAG_CERTIFICATE_NOT_TRUSTED),
        ("other host", FaultName.TAG_CERTIFICATE_NOT_TRUSTED),
        ("unreadable", FaultName.TAG_CERTIFICATE_NOT_TRUSTED),
        ("missing", FaultName.TAG_CERTIFICATE_MISSING),
    ],
)
def test_tag_certificate_trusted_faults(tag_ca: TagCA, case: str, expected: str) -> None:
    cert = tag_ca.issue()
    der: bytes | None = cert.der
    at, cas, manifest = INSIDE, (tag_ca.certificate,), host(cert.sha384)
    if case == "expired":
        at = END + dt.timedelta(seconds=1)
    elif case == "not yet valid":
        at = START - dt.timedelta(seconds=1)
    elif case == "other CA":
        cas = (make_tag_ca().certificate,)
    elif case == "other host":
        manifest = host(cert.sha384, OTHER_HOST)
    elif case == "unreadable":
        der = b"\x30\x03\x02\x01\x05"
    elif case == "missing":
        der = None
    result = TagCertificateTrusted(der, cas, "ASSET_TAG", at).apply(manifest)
    assert [f.name for f in result.faults] == [expected]
    assert (
        result.to_json()["faults"][0]["fault_name"]
        == "com.intel.mtwilson.core.verifier.policy.fault." + expected
    )


def test_revoked_certificate_is_refused_first_and_only_that_one(tag_ca: TagCA) -> None:
    cert, other = tag_ca.issue(), tag_ca.issue()
    flavor = build_asset_tag_flavor(cert, now=START)
    revoked = dataclasses.replace(anchors(tag_ca), revoked_tag_certificates=frozenset({cert.sha384}))
    verdict = evaluate_flavor(flavor, host(cert.sha384), revoked)
    assert faults(verdict) == {
        RuleName.TAG_CERTIFICATE_TRUSTED: [FaultName.TAG_CERTIFICATE_REVOKED],
        RuleName.ASSET_TAG_MATCHES: [],  # the digest still matches: the certificate is what is refused
    }
    (fault,) = verdict.results[0].faults
    assert cert.sha384.hex() in fault.description and not verdict.trusted
    # Revoked wins over expired (the issuer's record is decisive), and another certificate is unaffected.
    late = dataclasses.replace(revoked, at=END + dt.timedelta(days=1))
    assert faults(evaluate_flavor(flavor, host(cert.sha384), late))[RuleName.TAG_CERTIFICATE_TRUSTED] == [
        FaultName.TAG_CERTIFICATE_REVOKED
    ]
    assert evaluate_flavor(build_asset_tag_flavor(other, now=START), host(other.sha384), revoked).trusted
    # VMware hosts get TagCertificateTrusted alone; it refuses the revoked certificate too.
    vmware = parse_flavor({**flavor.to_json(), "meta": {**flavor.to_json()["meta"], "vendor": "VMWARE",
                           "description": {**flavor.meta.description, "tpm_version": "2.0"}}})  # fmt: skip
    assert faults(evaluate_flavor(vmware, host(cert.sha384), revoked)) == {
        RuleName.TAG_CERTIFICATE_TRUSTED: [FaultName.TAG_CERTIFICATE_REVOKED]
    }


def test_flavor_without_certificate_fails_both_rules(tag_ca: TagCA) -> None:
    doc = build_asset_tag_flavor(tag_ca.issue()).to_json()
    del doc["external"]
    flavor = parse_flavor(doc)
    assert tag_certificate_der(flavor) is None
    verdict = evaluate_flavor(flavor, host(hashlib.sha384(b"x").digest()), anchors(tag_ca))
    assert faults(verdict) == {
        RuleName.TAG_CERTIFICATE_TRUSTED: [FaultName.TAG_CERTIFICATE_MISSING],
        RuleName.ASSET_TAG_MATCHES: [FaultName.ASSET_TAG_NOT_PROVISIONED],
    }


def test_secl_asset_tag_flavor_against_its_own_host_manifest() -> None:
    # The corpus ASSET_TAG flavor is for 800012a7-… and signed by "CN=HVS Tag Certificate"; the manifest is
    # host 8dbf926c-… and the case trusts "CN=asset-tag-service". Both rules say why, by SecL's names.
    flavors = parse_signed_flavors(corpus_bytes(f"{CASE}/signed_flavors.json"))
    (tag_flavor,) = [f for f in flavors if f.flavor.flavor_part == "ASSET_TAG"]
    manifest = parse_host_manifest(corpus_bytes(f"{CASE}/host_manifest.json"))
    cas = tuple(x509.load_pem_x509_certificates(corpus_bytes(f"{CASE}/tag-cacerts.pem")))
    trust = TrustAnchors(
        at=dt.datetime(2021, 6, 1, tzinfo=dt.UTC), tag_cas=cas, check_flavor_signatures=False
    )
    verdict = evaluate_flavor(tag_flavor, manifest, trust)
    assert faults(verdict) == {
        RuleName.TAG_CERTIFICATE_TRUSTED: [FaultName.TAG_CERTIFICATE_NOT_TRUSTED],
        RuleName.ASSET_TAG_MATCHES: [FaultName.ASSET_TAG_MISMATCH],
    }
    assert json.dumps(verdict.results[1].to_json()["rule"]["tags"]) == '{"state": "TamilNadu"}'
