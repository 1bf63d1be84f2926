"""SOFTWARE flavors from Measurement XMLs (secl.core.softwareflavor), checked against SecL's own data.

Corpus: ``intel-secl/pkg/lib/verifier/test_data/UnknownVendor`` holds a host manifest with two SecL
Measurement XMLs and the SOFTWARE flavors SecL made for them: our flavor's ``software`` section must be
SecL's, key for key. Then the flavor is judged against that host manifest (trusted), and against altered
copies: a changed file digest, a PCR 15 event log that does not replay to the quoted PCR 15.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest

from secl.core.flavor import Flavor
from secl.core.hostmanifest import parse_host_manifest
from secl.core.measurementlog import MeasurementLog, parse_measurement_xml
from secl.core.softwareflavor import (
    SoftwareFlavorError,
    is_default_software_label,
    measurement_key,
    software_flavor,
)
from secl.core.trustreport import TrustAnchors, evaluate_flavor
from tests.corpus import corpus_bytes

CASE = "intel-secl/pkg/lib/verifier/test_data/UnknownVendor"
AT = dt.datetime(2021, 3, 9, tzinfo=dt.UTC)
ANCHORS = TrustAnchors(at=AT, check_flavor_signatures=False)


def _manifest_doc() -> dict[str, Any]:
    return json.loads(corpus_bytes(f"{CASE}/host_manifest.json"))


def _secl_software_flavors() -> dict[str, dict[str, Any]]:
    signed = json.loads(corpus_bytes(f"{CASE}/signed_flavors.json"))
    return {
        s["flavor"]["meta"]["description"]["label"]: s["flavor"]
        for s in signed
        if s["flavor"]["meta"]["description"]["flavor_part"] == "SOFTWARE"
    }


def _logs() -> list[MeasurementLog]:
    return [parse_measurement_xml(x) for x in _manifest_doc()["measurement_xmls"]]


def _faults(flavor: Flavor, doc: dict[str, Any]) -> list[tuple[str, str]]:
    verdict = evaluate_flavor(flavor, parse_host_manifest(json.dumps(doc).encode()), ANCHORS)
    return [
        (r.rule_name, f.name.rsplit(".", 1)[-1] + ": " + f.description)
        for r in verdict.results
        for f in r.faults
    ]


@pytest.mark.parametrize("position", [0, 1])
def test_software_section_is_secls(position: int) -> None:
    log = _logs()[position]
    ours = software_flavor(log).to_json()
    theirs = _secl_software_flavors()[log.label]
    assert ours["software"] == theirs["software"]
    assert ours["meta"]["id"] == log.uuid and ours["meta"]["description"]["flavor_part"] == "SOFTWARE"
    assert ours["meta"]["description"]["digest_algorithm"] == "SHA384"
    (pcr,) = ours["pcrs"]
    assert pcr["pcr"] == {"index": 15, "bank": "SHA256"} and pcr["pcr_matches"] is False
    # The event SecL's agent logged for this measurement is the one the flavor expects.
    logged = {
        e["measurement"]
        for entry in _manifest_doc()["pcr_manifest"]["pcr_event_log_map"]["SHA256"]
        if entry["pcr"]["index"] == 15
        for e in entry["tpm_events"]
    }
    assert pcr["eventlog_includes"][0]["measurement"] in logged


def test_flavor_trusts_the_host_it_came_from() -> None:
    log = _logs()[0]
    assert _faults(software_flavor(log), _manifest_doc()) == []


def test_changed_file_is_named() -> None:
    doc = _manifest_doc()
    log = _logs()[0]
    flavor = software_flavor(log)
    target = "/opt/tbootxm/bin/measure"
    xml = doc["measurement_xmls"][0]
    entry = next(e for e in log.entries if e.path == target)
    doc["measurement_xmls"][0] = xml.replace(entry.digest, "ab" * 48)
    faults = _faults(flavor, doc)
    names = [f for _, f in faults]
    assert any(f.startswith("XmlMeasurementLogValueMismatchEntriesSha384") and target in f for f in names), (
        faults
    )
    # The XML no longer replays to its own CumulativeHash: the integrity rule says so too.
    assert any(f.startswith("XmlMeasurementValueMismatch") for f in names), faults


def test_pcr15_log_that_does_not_replay_is_an_integrity_fault() -> None:
    doc = copy.deepcopy(_manifest_doc())
    for entry in doc["pcr_manifest"]["sha2pcrs"]:
        if entry["index"] == "pcr_15":
            entry["value"] = "00" * 31 + "01"
    faults = _faults(software_flavor(_logs()[0]), doc)
    assert [rule for rule, _ in faults] == ["PcrEventLogIntegrity"], faults
    assert "PCR 15 Event Log is invalid" in faults[0][1]


def test_unexpected_entry_is_named() -> None:
    log = _logs()[0]
    fewer = MeasurementLog(log.label, log.uuid, log.digest_alg, log.entries[:-1], "")
    fewer = MeasurementLog(log.label, log.uuid, log.digest_alg, fewer.entries, fewer.replay())
    flavor = software_flavor(fewer)
    faults = _faults(flavor, _manifest_doc())
    extra = log.entries[-1].path
    assert any(
        rule == "XmlMeasurementLogEquals" and "unexpected" in f and extra in f for rule, f in faults
    ), faults


def test_refuses_inconsistent_or_anonymous_logs() -> None:
    log = _logs()[0]
    with pytest.raises(SoftwareFlavorError) as bad:
        software_flavor(MeasurementLog(log.label, log.uuid, log.digest_alg, log.entries, "00" * 48))
    assert bad.value.code == "software-flavor-inconsistent"
    with pytest.raises(SoftwareFlavorError):
        software_flavor(MeasurementLog(log.label, "", log.digest_alg, log.entries, log.cumulative_hash))


def test_names() -> None:
    assert measurement_key("/opt/tbootxm/bin/measure") == "opt-tbootxm-bin-measure"
    assert is_default_software_label("ISecL_Default_Application_Flavor_v3.3_TPM2.0")
    assert not is_default_software_label("tomcat")
