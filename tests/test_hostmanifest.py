"""SecL host manifests: both event-list formats, and replay of every PCR's events to the reported value."""

from __future__ import annotations

import json

import pytest

from secl.core.errors import ReplayError
from secl.core.hostmanifest import (
    HostManifestError,
    parse_host_manifest,
    replay_manifest_event_logs,
    verify_manifest_event_logs,
)
from secl.core.pcrevents import PcrRef
from tests.corpus import corpus_bytes

PKG = "intel-secl/pkg"


@pytest.mark.parametrize(
    ("path", "fmt", "replaying"),
    [
        # INDEX: UnknownVendor 21/21, tagent 5/5.
        ("lib/verifier/test_data/UnknownVendor/host_manifest.json", "new", 21),
        ("tagent/test/resources/host_manifest.json", "new", 5),
        ("lib/verifier/test_data/vmware12/host_manifest.json", "new", 3),
        ("lib/flavor/test/resources/HostManifest_VmWare.json", "old", 3),
        ("lib/flavor/test/resources/SWManifest.json", "old", 1),
    ],
)
def test_event_lists_replay_to_the_reported_pcrs(path: str, fmt: str, replaying: int) -> None:
    manifest = parse_host_manifest(corpus_bytes(f"{PKG}/{path}"))
    assert manifest.event_log_format == fmt
    results = verify_manifest_event_logs(manifest)
    assert len(results) == replaying and all(r.matches for r in results)


def test_startup_locality_3_sets_pcr0_initial_value() -> None:
    manifest = parse_host_manifest(
        corpus_bytes(f"{PKG}/lib/verifier/test_data/UnknownVendor/host_manifest.json")
    )
    events = manifest.event_log("SHA256", 0)
    assert events is not None and events[0].tags == ("StartupLocality3",)
    # Without the locality marker the same events would not reach the reported value.
    from secl.core.pcrevents import replay_events

    assert replay_events("SHA256", 0, events).hex() == manifest.pcr_value("SHA256", 0)
    assert replay_events("SHA256", 0, events[1:]).hex() != manifest.pcr_value("SHA256", 0)


def test_hostmanifest1_txt_pcrs_do_not_replay_by_design() -> None:
    # INDEX: HostManifest1 is an old flavor fixture with an incomplete TXT log; PCR 17/18 do not replay.
    manifest = parse_host_manifest(corpus_bytes(f"{PKG}/lib/flavor/test/resources/HostManifest1.json"))
    bad = {r.pcr for r in replay_manifest_event_logs(manifest) if not r.matches}
    assert bad == {PcrRef(17, "SHA1"), PcrRef(17, "SHA256"), PcrRef(18, "SHA1"), PcrRef(18, "SHA256")}
    with pytest.raises(ReplayError) as info:
        verify_manifest_event_logs(manifest)
    assert set(info.value.mismatches) == {("sha1", 17), ("sha256", 17), ("sha1", 18), ("sha256", 18)}


def test_old_format_events_keep_label_and_info() -> None:
    manifest = parse_host_manifest(corpus_bytes(f"{PKG}/lib/flavor/test/resources/HostManifest_VmWare.json"))
    (event,) = manifest.event_log("SHA1", 18) or ()
    assert event.type_name == "b"
    assert event.tags == ("componentName.b", "Vim25Api.HostTpmSoftwareComponentEventDetails")
    assert event.extra["info"]["PackageName"] == "esx-base"


def test_manifest_fields() -> None:
    manifest = parse_host_manifest(
        corpus_bytes(f"{PKG}/lib/verifier/test_data/UnknownVendor/host_manifest.json")
    )
    assert manifest.aik_certificate and manifest.aik_certificate[:2] == b"\x30\x82"
    assert manifest.asset_tag_digest is not None and len(manifest.asset_tag_digest) == 48
    assert len(manifest.measurement_xmls) == 2
    assert manifest.host_info["os_name"] == "RedHatEnterprise"
    assert len(manifest.pcr_values) == 48


def _doc() -> dict:
    return json.loads(corpus_bytes(f"{PKG}/lib/verifier/test_data/vmware12/host_manifest.json"))


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["pcr_manifest"]["sha1pcrs"].append(d["pcr_manifest"]["sha1pcrs"][0]), "second value"),
        (lambda d: d["pcr_manifest"]["sha1pcrs"][0].update(index="pcr_x"), "not an integer"),
        (
            lambda d: d["pcr_manifest"]["pcr_event_log_map"]["SHA1"][0]["tpm_events"][0].update(
                measurement="zz"
            ),
            "measurement 'zz' has 'z' at position 0, which is not a hex digit",
        ),
        (lambda d: d["pcr_manifest"]["pcr_event_log_map"].update(MD5=[]), "unsupported PCR bank"),
        (lambda d: d.update(aik_certificate="***"), "not valid base64"),
        (lambda d: d["pcr_manifest"]["pcr_event_log_map"]["SHA1"].append({"foo": 1}), "neither tpm_events"),
    ],
)
def test_malformed_manifests_are_named_errors(mutate, fragment: str) -> None:
    doc = _doc()
    mutate(doc)
    with pytest.raises(HostManifestError) as info:
        parse_host_manifest(json.dumps(doc))
    assert fragment in str(info.value)
