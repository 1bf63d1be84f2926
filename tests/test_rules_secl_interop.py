"""SecL interop: our rules engine against the trust reports SecL's (Java) HVS produced for the same evidence.

Corpus: ``intel-secl/pkg/lib/verifier/test_data/{UnknownVendor,vmware12}`` — a host manifest, the signed
flavors, and ``trust_report.json`` (flavor part → {trust, rules}), the ground truth: every part trusted.

What is compared, per flavor part SecL reported: the ordered list of rule names (all of them, FlavorTrusted
and AikCertificateTrusted included) and, for every rule except those two, the rule's verdict; the part's
verdict is then compared with FlavorTrusted left out. The two rules are handled apart, with reasons:

- FlavorTrusted: the Java HVS signed its own serialization; no serialization we can produce verifies, and
  the RSA public operation with the corpus's flavor-signer certificate yields no signature encoding at all,
  so that certificate's key did not make these signatures. We run the rule and assert it reports
  FlavorSignatureVerificationFailed *with that explanation* (never a silent pass); SecL's own Go test
  skips the rule for the same data. The rule itself is proven on flavors we sign.
- AikCertificateTrusted (UnknownVendor only; VMware hosts have no AIK, and neither report lists the rule
  for them): the manifest's AIK certificate was issued by "CN=HVS Privacy Certificate", but the case's
  PrivacyCA.pem is "CN=mtwilson-pca-aik" and its key did not sign the AIK (nor did any key in the corpus).
  The evidence therefore does not support SecL's "trusted"; we assert AikCertificateNotTrusted naming the
  issuer, and prove the rule's positive path with a Privacy CA and AIK we issue.

UnknownVendor's signed flavors all say ``"vendor": "UNKNOWN"``; SecL's Go HVS fails to unmarshal that (its
Vendor type knows only INTEL/VMWARE/MICROSOFT), which is why its test expects an error. The Java HVS, which
made the report, derived the vendor from the host. We do the same (RedHat host → INTEL rules), and the
rule names then match SecL's report one for one.

Evaluation time: the certificates have expired since; each case is evaluated at an instant inside the
validity of the flavor-signing certificate (and, for UnknownVendor, of the AIK).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from secl.core.flavorsign import sign_flavor
from secl.core.hostmanifest import parse_host_manifest
from secl.core.rules import RuleName
from secl.core.rules_trust import AikCertificateTrusted
from secl.core.trustreport import build_trust_report, evaluate_flavor, summarize_secl_report
from tests.corpus import corpus_bytes
from tests.secl_interop import AT, BASE
from tests.secl_interop import anchors as _anchors
from tests.secl_interop import certs as _certs
from tests.secl_interop import load as _load
from tests.secl_interop import make_cert as _cert

APART = {RuleName.FLAVOR_TRUSTED, RuleName.AIK_CERTIFICATE_TRUSTED}


@pytest.mark.parametrize("case", ["UnknownVendor", "vmware12"])
def test_same_rules_and_verdicts_as_secl(case: str) -> None:
    manifest, flavors, secl_doc = _load(case)
    report = build_trust_report(flavors, manifest, _anchors(case))
    for part, secl_part in secl_doc.items():
        assert secl_part["trust"] is True  # INDEX: the ground truth is trusted everywhere.
        secl_rules = secl_part["rules"]
        # SecL's file keeps one flavor per part; compare with our results for that flavor.
        (verdict,) = [v for v in report.parts[part].flavors if v.flavor_id == secl_rules[0]["flavor_id"]]
        ours_rules = [r.to_json() for r in verdict.results]
        names = [r["rule"]["rule_name"] for r in ours_rules]
        assert names == [r["rule"]["rule_name"] for r in secl_rules], part  # Same rules, same order.
        for mine, theirs in zip(ours_rules, secl_rules, strict=True):
            bare = mine["rule"]["rule_name"].rsplit(".", 1)[-1]
            if bare in APART:
                continue
            assert mine["trusted"] == theirs["trusted"], (part, bare, mine.get("faults"))
            # Where SecL shows what a PCR rule expected, we expected the same.
            for key in ("pcr", "measurement", "expected_values", "pcrs", "expected_measurements"):
                if key in theirs["rule"]:
                    assert _norm(mine["rule"][key]) == _norm(theirs["rule"][key]), (part, bare, key)
        compared = [
            r["trusted"] for r in ours_rules if r["rule"]["rule_name"].rsplit(".", 1)[-1] not in APART
        ]
        assert all(compared) == secl_part["trust"]


def _norm(value):
    # SecL sorts nothing; only Java's measurement lists are in map order, so compare those as sets.
    if isinstance(value, list) and value and isinstance(value[0], dict) and "Path" in value[0]:
        return sorted(json.dumps(v, sort_keys=True) for v in value)
    return value


@pytest.mark.parametrize("case", ["UnknownVendor", "vmware12"])
def test_flavor_trusted_reports_why_secl_signatures_cannot_be_checked(case: str) -> None:
    manifest, flavors, _ = _load(case)
    for signed in flavors:
        verdict = evaluate_flavor(signed, manifest, _anchors(case))
        (result,) = [r for r in verdict.results if r.rule_name == RuleName.FLAVOR_TRUSTED]
        (fault,) = result.faults
        assert fault.name == "FlavorSignatureVerificationFailed"
        assert "does not match any reproducible serialization" in fault.description


@pytest.mark.parametrize("case", ["UnknownVendor", "vmware12"])
def test_flavors_we_re_sign_are_trusted_end_to_end(case: str) -> None:
    # Importing re-signs with our key (DESIGN §3); FlavorTrusted then passes, and with the corpus evidence
    # every part SecL reported is trusted apart from UnknownVendor's AIK (see the module docstring).
    manifest, flavors, secl_doc = _load(case)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    signer_key = ec.generate_private_key(ec.SECP384R1())
    ca = _cert("Flavor CA", ca_key, ca_key, None, ca=True)
    signer = _cert("Flavor Signer", signer_key, ca_key, ca)
    ours = [sign_flavor(f.flavor, signer_key) for f in flavors if f.flavor.flavor_part in secl_doc]
    anchors = _anchors(case, at=_NOW, flavor_signing_cert=signer, flavor_cas=(ca,), flavor_intermediates=())
    report = build_trust_report(ours, manifest, anchors)
    trusted = {part: report.parts[part].trusted for part in secl_doc}
    for part in secl_doc:
        results = report.parts[part].results
        assert any(r.rule_name == RuleName.FLAVOR_TRUSTED and r.trusted for r in results)
    if case == "vmware12":
        assert trusted == dict.fromkeys(secl_doc, True)
    else:
        # The only fault left anywhere is the AIK's, in each part that checks it.
        faults = {(part, f.name) for part in secl_doc for r in report.parts[part].results for f in r.faults}
        assert faults == {(p, "AikCertificateNotTrusted") for p in ("PLATFORM", "OS", "HOST_UNIQUE")}
        assert trusted["SOFTWARE"] is True


_NOW = dt.datetime(2021, 3, 9, tzinfo=dt.UTC)


def test_unknown_vendor_aik_does_not_chain_to_the_corpus_privacy_ca() -> None:
    manifest, _, _ = _load("UnknownVendor")
    result = AikCertificateTrusted(
        _certs("UnknownVendor", "PrivacyCA.pem"), "PLATFORM", AT["UnknownVendor"]
    ).apply(manifest)
    (fault,) = result.faults
    assert fault.name == "AikCertificateNotTrusted"
    assert "CN=HVS Privacy Certificate" in fault.description


def test_aik_certificate_trusted_positive_and_negative_paths() -> None:
    manifest, _, _ = _load("UnknownVendor")
    pca_key = ec.generate_private_key(ec.SECP384R1())
    pca = _cert("Privacy CA", pca_key, pca_key, None, ca=True, days=3650)
    aik = _cert("AIK", ec.generate_private_key(ec.SECP256R1()), pca_key, pca, days=30)
    der = aik.public_bytes(serialization.Encoding.DER)
    host = dataclasses.replace(manifest, aik_certificate=der)
    inside = dt.datetime(2021, 1, 10, tzinfo=dt.UTC)
    assert AikCertificateTrusted((pca,), "OS", inside).apply(host).trusted
    expired = AikCertificateTrusted((pca,), "OS", dt.datetime(2021, 3, 1, tzinfo=dt.UTC)).apply(host)
    assert [f.name for f in expired.faults] == ["AikCertificateExpired"]
    early = AikCertificateTrusted((pca,), "OS", dt.datetime(2020, 12, 1, tzinfo=dt.UTC)).apply(host)
    assert [f.name for f in early.faults] == ["AikCertificateNotYetValid"]
    other = AikCertificateTrusted(_certs("UnknownVendor", "PrivacyCA.pem"), "OS", inside).apply(host)
    assert [f.name for f in other.faults] == ["AikCertificateNotTrusted"]
    bare = dataclasses.replace(host, aik_certificate=None)
    assert [f.name for f in AikCertificateTrusted((pca,), "OS", inside).apply(bare).faults] == [
        "AikCertificateMissing"
    ]


def test_asset_tag_flavor_belongs_to_another_host() -> None:
    # SecL's report has no ASSET_TAG part. The ASSET_TAG flavor in the file was made for hardware UUID
    # 800012a7-… on 2021-04-28, not for this host (8dbf926c-…): our rules say so.
    manifest, flavors, _ = _load("UnknownVendor")
    (tag_flavor,) = [f for f in flavors if f.flavor.flavor_part == "ASSET_TAG"]
    verdict = evaluate_flavor(tag_flavor, manifest, _anchors("UnknownVendor", check_flavor_signatures=False))
    names = {f.name for f in verdict.faults}
    assert "AssetTagMismatch" in names and not verdict.trusted


# --- Negative interop: change the evidence and name what changed. ---


def _mutated(case: str, mutate) -> tuple:
    doc = json.loads(corpus_bytes(f"{BASE}/{case}/host_manifest.json"))
    mutate(doc)
    _, flavors, _ = _load(case)
    anchors = _anchors(case, check_flavor_signatures=False)
    return build_trust_report(flavors, parse_host_manifest(json.dumps(doc)), anchors)


def test_changed_pcr_value_is_pcr_value_mismatch_naming_pcr_and_bank() -> None:
    def mutate(doc):
        pcr = next(p for p in doc["pcr_manifest"]["sha2pcrs"] if p["index"] == "pcr_5")
        pcr["value"] = "ab" * 32

    report = _mutated("UnknownVendor", mutate)
    platform = report.parts["PLATFORM"]
    assert not platform.trusted
    faults = [f for r in platform.results for f in r.faults if f.name.startswith("PcrValue")]
    (fault,) = faults
    assert (fault.name, fault.pcr_index, fault.pcr_bank) == ("PcrValueMismatchSHA256", 5, "SHA256")
    assert fault.actual_value == "ab" * 32
    assert fault.expected_value == "2b03086e7ab62819bd0667e159267e7ffc7779e6f9a26e3c728925f6cd0b4cb4"
    exported = next(
        r
        for r in report.to_json()["results"]
        if r.get("faults") and "PcrValue" in r["faults"][0]["fault_name"]
    )
    assert exported["faults"][0]["fault_name"].endswith("fault.PcrValueMismatchSHA256")
    assert exported["faults"][0]["pcr_index"] == 5 and exported["faults"][0]["pcr_bank"] == "SHA256"


def test_removed_event_is_named_missing() -> None:
    removed = {}

    def mutate(doc):
        log = next(e for e in doc["pcr_manifest"]["pcr_event_log_map"]["SHA256"] if e["pcr"]["index"] == 0)
        removed["event"] = log["tpm_events"].pop(1)  # EV_S_CRTM_CONTENTS

    report = _mutated("UnknownVendor", mutate)
    results = {r.rule_name: r for r in report.parts["PLATFORM"].results if not r.trusted}
    equals = results["PcrEventLogEquals"]
    (fault,) = equals.faults
    assert fault.name == "PcrEventLogMissingExpectedEntries" and (fault.pcr_index, fault.pcr_bank) == (
        0,
        "SHA256",
    )
    (missing,) = fault.missing_entries
    assert (missing.type_name, missing.tags, missing.measurement) == (
        "EV_S_CRTM_CONTENTS",
        ("Boot Guard Measured S-CRTM",),
        removed["event"]["measurement"],
    )
    assert "EV_S_CRTM_CONTENTS (0x7) tags=['Boot Guard Measured S-CRTM']" in fault.explain()
    # The shortened log no longer replays to PCR 0: the integrity rule says so too.
    assert [f.name for f in results["PcrEventLogIntegrity"].faults] == ["PcrEventLogInvalid"]


def test_added_event_is_named_unexpected() -> None:
    extra = {
        "type_id": "0x80000003",
        "type_name": "EV_EFI_BOOT_SERVICES_APPLICATION",
        "tags": ["shim"],
        "measurement": "cd" * 20,
    }

    def mutate(doc):
        log = next(e for e in doc["pcr_manifest"]["pcr_event_log_map"]["SHA1"] if e["pcr"]["index"] == 19)
        log["tpm_events"].append(extra)

    report = _mutated("vmware12", mutate)
    os_results = {r.rule_name: r for r in report.parts["OS"].results if not r.trusted}
    (fault,) = os_results["PcrEventLogEqualsExcluding"].faults
    assert fault.name == "PcrEventLogContainsUnexpectedEntries" and (fault.pcr_index, fault.pcr_bank) == (
        19,
        "SHA1",
    )
    (unexpected,) = fault.unexpected_entries
    assert unexpected.type_name == "EV_EFI_BOOT_SERVICES_APPLICATION" and unexpected.tags == ("shim",)
    assert [f.name for f in os_results["PcrEventLogIntegrity"].faults] == ["PcrEventLogInvalid"]
    assert not report.trusted


def test_missing_required_part_and_all_of() -> None:
    manifest, flavors, _ = _load("UnknownVendor")
    anchors = _anchors("UnknownVendor", check_flavor_signatures=False)
    platform_only = [f for f in flavors if f.flavor.flavor_part == "PLATFORM"]
    report = build_trust_report(platform_only, manifest, anchors, required_parts=("PLATFORM", "OS"))
    (result,) = report.parts["OS"].results
    assert result.rule_name == "RequiredFlavorTypeExists"
    assert [f.name for f in result.faults] == ["RequiredFlavorTypeMissing"] and not report.trusted

    software = [f for f in flavors if f.flavor.flavor_part == "SOFTWARE"]
    ok = build_trust_report(software, manifest, anchors)
    assert ok.parts["SOFTWARE"].trusted  # Both SOFTWARE flavors hold: ALL_OF is satisfied.
    doc = json.loads(corpus_bytes(f"{BASE}/UnknownVendor/host_manifest.json"))
    doc["measurement_xmls"] = doc["measurement_xmls"][:1]  # Drop the workload flavor's measurement log.
    broken = build_trust_report(software, parse_host_manifest(json.dumps(doc)), anchors)
    names = [f.name for r in broken.parts["SOFTWARE"].results for f in r.faults]
    assert "XmlMeasurementLogMissing" in names and "AllOfFlavorsMissing" in names


@pytest.mark.parametrize(
    "path",
    [
        "intel-secl/pkg/hvs/domain/mocks/resources/fault_trust_report.json",
        "intel-secl/pkg/hvs/domain/mocks/resources/software_fault_report.json",
        "intel-secl/pkg/hvs/domain/mocks/resources/trust_report.json",
        f"{BASE}/vmware12/trust_report.json",
    ],
)
def test_secl_report_shapes_are_read(path: str) -> None:
    summary = summarize_secl_report(json.loads(corpus_bytes(path)))
    assert summary and all(isinstance(trusted, bool) for trusted, _, _ in summary.values())
    if "fault_trust" in path:
        assert summary["HOST_UNIQUE"][0] is False and "PcrEventLogInvalid" in summary["HOST_UNIQUE"][2]


def test_our_json_export_reads_back_in_secl_shapes() -> None:
    report = _mutated("UnknownVendor", lambda doc: doc["pcr_manifest"]["sha2pcrs"][0].update(value="00" * 32))
    by_results = summarize_secl_report(report.to_json())
    by_parts = summarize_secl_report(report.flavors_trust_json())
    hvs_shape = {
        "reports": [
            {"trust_information": {"OVERALL": report.trusted, "flavors_trust": report.flavors_trust_json()}}
        ]
    }
    assert summarize_secl_report(hvs_shape) == by_parts
    for part, (trusted, rules, faults) in by_parts.items():
        assert (
            by_results[part][0] == trusted and by_results[part][1] == rules and by_results[part][2] == faults
        )
    assert by_parts["PLATFORM"][0] is False and "PcrValueMismatchSHA256" in by_parts["PLATFORM"][2]
