"""Measurement XML and the PCR 15 application events (``secl.core.measurementlog``, ``secl.core.appeventlog``)
against every SecL measurement in the corpus.

Where the measurements are: the ``measurement_xmls`` of six SecL host manifests (two each), the host
manifest inside ``pkg/hvs/domain/mocks/resources/trust_report.json`` (two) and
``pkg/lib/host-connector/test/sample_measurement.xml``: 15 documents made by SecL's tools.

What the corpus proves and what it does not:

- every one of the 15 chains to its CumulativeHash (SHA-384 from zeros);
- the six made by SecL v3.2/v3.3 hosts (new event format) have a PCR 15 event tagged ``<Label>-<Uuid>``
  whose measurement is SHA-256 of the CumulativeHash bytes, and those events replay to the host's
  reported SHA-256 PCR 15 while its SHA-1 PCR 15 stays zero: SecL extends the SHA-256 bank only;
- the six from Java-era hosts (v1.0/v2.1, old ``event_log`` format) carry PCR 15 values that are *not*
  SHA-256 of the CumulativeHash (nor of its hex text); that older agent's rule is not recoverable from
  the data, and is not what SecL v3+ does. The test pins this so nobody "fixes" the rule to match them;
- ``HostManifest1.json`` (v2.1) has no PCR 15 events at all;
- ``pkg/lib/flavor/test/resources/SoftwareFlavor.xml`` is a hand-made flavor fixture whose digests do
  not chain (its Include is ``.•``); ``BadSoftwareFlavor.xml`` is not well-formed. Both are negative cases.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from secl.core.appeventlog import (
    APPLICATION_PCR,
    EVENT_TYPE_ID,
    EVENT_TYPE_NAME,
    AppEventLogError,
    append_event,
    application_event,
    parse_event_log,
    render_event_log,
    replay,
)
from secl.core.appmanifest import EntryKind
from secl.core.hashalg import HashAlg
from secl.core.hostmanifest import HostManifest, PcrEventLog, parse_host_manifest
from secl.core.measurementlog import (
    Measured,
    MeasurementLog,
    MeasurementLogError,
    cumulative_hash,
    directory_digest,
    parse_measurement_xml,
    render_measurement_xml,
    symlink_digest,
)
from secl.core.pcrevents import PcrRef
from secl.core.rules_software import XmlMeasurementLogEquals, XmlMeasurementLogIntegrity
from tests.corpus import corpus_bytes

SECL = "intel-secl/pkg"
V3_HOSTS = [
    f"{SECL}/lib/host-connector/test/LatestHostManifest.json",
    f"{SECL}/lib/flavor/test/resources/RHELHostManifest.json",
    f"{SECL}/lib/verifier/test_data/UnknownVendor/host_manifest.json",
]
JAVA_HOSTS = [
    f"{SECL}/lib/host-connector/test/sample_host_manifest.json",
    f"{SECL}/lib/flavor/test/resources/SWManifest.json",
]
NO_EVENT_HOSTS = [f"{SECL}/lib/flavor/test/resources/HostManifest1.json"]
TRUST_REPORT = f"{SECL}/hvs/domain/mocks/resources/trust_report.json"


def _host_documents() -> list[tuple[str, dict]]:
    docs = [(path, json.loads(corpus_bytes(path))) for path in V3_HOSTS + JAVA_HOSTS + NO_EVENT_HOSTS]
    docs.append((TRUST_REPORT, json.loads(corpus_bytes(TRUST_REPORT))["host_manifest"]))
    return docs


def _all_xmls() -> list[tuple[str, str]]:
    xmls = [
        (f"{path}[{i}]", x) for path, doc in _host_documents() for i, x in enumerate(doc["measurement_xmls"])
    ]
    xmls.append(
        (
            "sample_measurement.xml",
            corpus_bytes(f"{SECL}/lib/host-connector/test/sample_measurement.xml").decode(),
        )
    )
    return xmls


ALL_XMLS = _all_xmls()


def test_the_corpus_holds_fifteen_secl_measurements() -> None:
    assert len(ALL_XMLS) == 15


def _independent_chain(xml: str) -> str:
    """The chain recomputed with hashlib straight from the document text (no secl code)."""
    import re

    digests = re.findall(r">\s*([0-9a-fA-F]{96})\s*</(?:\w+:)?(?:File|Dir|Symlink)>", xml)
    value = bytes(48)
    for digest in digests:
        value = hashlib.sha384(value + bytes.fromhex(digest)).digest()
    return value.hex()


@pytest.mark.parametrize(("where", "xml"), ALL_XMLS, ids=[w for w, _ in ALL_XMLS])
def test_cumulative_hash_reproduces(where: str, xml: str) -> None:
    log = parse_measurement_xml(xml)
    assert log.digest_alg == "SHA384"
    assert log.replay() == log.cumulative_hash == _independent_chain(xml)
    assert (
        cumulative_hash(HashAlg.SHA384, [bytes.fromhex(e.digest) for e in log.entries]).hex() == log.replay()
    )


@pytest.mark.parametrize(("where", "xml"), ALL_XMLS, ids=[w for w, _ in ALL_XMLS])
def test_rendering_round_trips(where: str, xml: str) -> None:
    log = parse_measurement_xml(xml)
    rendered = render_measurement_xml(log)
    assert parse_measurement_xml(rendered) == log
    if xml.startswith("<?xml"):  # what SecL's agents serve: we write the very same bytes
        assert rendered == xml


def _pairs(paths: list[str]) -> list[tuple[str, MeasurementLog, HostManifest]]:
    out = []
    for path in paths:
        manifest = parse_host_manifest(corpus_bytes(path))
        out += [(path, parse_measurement_xml(x), manifest) for x in manifest.measurement_xmls]
    return out


V3_PAIRS = _pairs(V3_HOSTS)


@pytest.mark.parametrize(
    ("path", "log", "manifest"), V3_PAIRS, ids=[f"{p}:{log.label}" for p, log, _ in V3_PAIRS]
)
def test_pcr15_event_is_sha256_of_the_cumulative_hash(
    path: str, log: MeasurementLog, manifest: HostManifest
) -> None:
    events = [e for e in manifest.event_log("SHA256", 15) or () if log.event_tag in e.tags]
    ours = application_event(log)
    assert len(events) == 1
    assert (events[0].type_id, events[0].type_name, events[0].tags) == (
        ours.type_id,
        ours.type_name,
        ours.tags,
    )
    assert (
        events[0].measurement
        == ours.measurement
        == hashlib.sha256(bytes.fromhex(log.cumulative_hash)).hexdigest()
    )


def test_six_v3_measurements_have_matching_events() -> None:
    assert len(V3_PAIRS) == 6


@pytest.mark.parametrize("path", V3_HOSTS)
def test_secl_extends_pcr15_of_sha256_only(path: str) -> None:
    manifest = parse_host_manifest(corpus_bytes(path))
    logs = [PcrEventLog(APPLICATION_PCR, manifest.event_log("SHA256", 15))]
    assert replay(logs)[APPLICATION_PCR].hex() == manifest.pcr_value("SHA256", 15)
    assert manifest.pcr_value("SHA1", 15) == "00" * 20
    assert manifest.event_log("SHA1", 15) is None


JAVA_PAIRS = _pairs(JAVA_HOSTS) + [
    (
        TRUST_REPORT,
        parse_measurement_xml(x),
        parse_host_manifest(json.loads(corpus_bytes(TRUST_REPORT))["host_manifest"]),
    )
    for x in json.loads(corpus_bytes(TRUST_REPORT))["host_manifest"]["measurement_xmls"]
]


@pytest.mark.parametrize(
    ("path", "log", "manifest"), JAVA_PAIRS, ids=[f"{p}:{log.label}" for p, log, _ in JAVA_PAIRS]
)
def test_java_era_pcr15_values_follow_another_rule(
    path: str, log: MeasurementLog, manifest: HostManifest
) -> None:
    events = [e for e in manifest.event_log("SHA256", 15) or () if log.event_tag in e.tags]
    assert len(events) == 1
    cumulative = bytes.fromhex(log.cumulative_hash)
    candidates = {
        hashlib.sha256(cumulative).hexdigest(),
        hashlib.sha256(log.cumulative_hash.encode()).hexdigest(),
    }
    assert events[0].measurement not in candidates


def test_host_manifest1_has_no_pcr15_events() -> None:
    manifest = parse_host_manifest(corpus_bytes(NO_EVENT_HOSTS[0]))
    assert len(manifest.measurement_xmls) == 2
    assert manifest.event_log("SHA256", 15) is None


def test_hand_made_flavor_fixture_does_not_chain() -> None:
    log = parse_measurement_xml(corpus_bytes(f"{SECL}/lib/flavor/test/resources/SoftwareFlavor.xml"))
    assert [e.kind for e in log.entries] == [EntryKind.SYMLINK, EntryKind.DIR, EntryKind.FILE]
    assert log.entries[1].include == ".•"
    assert log.replay() != log.cumulative_hash


def test_bad_flavor_fixture_is_refused() -> None:
    with pytest.raises(MeasurementLogError) as caught:
        parse_measurement_xml(corpus_bytes(f"{SECL}/lib/flavor/test/resources/BadSoftwareFlavor.xml"))
    assert "well-formed" in str(caught.value)


# --- the digests ------------------------------------------------------------------------------------


def test_directory_digest_is_sorted_newline_terminated_names() -> None:
    names = [b"b", b"a.sh", b"B", b".hidden"]
    expected = hashlib.sha384(b".hidden\nB\na.sh\nb\n").digest()
    assert directory_digest(HashAlg.SHA384, names) == expected
    assert directory_digest(HashAlg.SHA256, []) == hashlib.sha256(b"").digest()


def test_directory_digest_refuses_ambiguous_names() -> None:
    with pytest.raises(MeasurementLogError) as caught:
        directory_digest(HashAlg.SHA384, [b"a\nb"])
    assert caught.value.code == "name-has-newline"


def test_symlink_digest_is_path_then_target() -> None:
    assert symlink_digest(HashAlg.SHA256, b"/opt/l", b"../t") == hashlib.sha256(b"/opt/l../t").digest()


def test_sha256_logs_chain_with_sha256() -> None:
    digests = [hashlib.sha256(b"x").hexdigest(), hashlib.sha256(b"y").hexdigest()]
    value = bytes(32)
    for d in digests:
        value = hashlib.sha256(value + bytes.fromhex(d)).digest()
    log = MeasurementLog(
        "l",
        "u",
        "SHA256",
        tuple(Measured(EntryKind.FILE, f"/{n}", d) for n, d in zip("xy", digests, strict=True)),
        value.hex(),
    )
    assert parse_measurement_xml(render_measurement_xml(log)).replay() == value.hex()


# --- writing and hostile input ---------------------------------------------------------------------


def _log(
    *entries: Measured, label: str = "app", uuid: str = "834076cd-f733-4cca-a417-113fac90adc7"
) -> MeasurementLog:
    chain = cumulative_hash(HashAlg.SHA384, [bytes.fromhex(e.digest) for e in entries]).hex()
    return MeasurementLog(label, uuid, "SHA384", entries, chain)


def test_rendered_xml_has_secl_shape_and_escapes() -> None:
    d = "ab" * 48
    log = _log(
        Measured(EntryKind.DIR, '/d "q" & <x>', d, include=".*", exclude=""),
        Measured(EntryKind.FILE, "/f\tg", d),
        Measured(EntryKind.SYMLINK, "/l", d),
    )
    xml = render_measurement_xml(log)
    assert xml.startswith(
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Measurement xmlns="lib:wml:measurements:1.0" '
        'Label="app" Uuid="834076cd-f733-4cca-a417-113fac90adc7" DigestAlg="SHA384">'
        f'<Dir Exclude="" Include=".*" Path="/d &quot;q&quot; &amp; &lt;x&gt;">{d}</Dir>'
        f'<File Path="/f&#9;g">{d}</File><Symlink Path="/l">{d}</Symlink><CumulativeHash>'
    )
    back = parse_measurement_xml(xml)
    assert back == log
    assert [e.path for e in back.entries] == ['/d "q" & <x>', "/f\tg", "/l"]


def test_unrepresentable_path_is_a_named_error() -> None:
    with pytest.raises(MeasurementLogError) as caught:
        render_measurement_xml(_log(Measured(EntryKind.FILE, "/bad\x01name", "ab" * 48)))
    assert caught.value.code == "measurement-path-unrepresentable"
    with pytest.raises(MeasurementLogError):
        render_measurement_xml(_log(Measured(EntryKind.FILE, "/undecodable\udcff", "ab" * 48)))


GOOD = '<Measurement xmlns="lib:wml:measurements:1.0" Label="a" Uuid="u" DigestAlg="SHA384">{}</Measurement>'
CUM = "<CumulativeHash>" + "00" * 48 + "</CumulativeHash>"


@pytest.mark.parametrize(
    ("xml", "code"),
    [
        ('<!DOCTYPE x [<!ENTITY e "e">]>' + GOOD.format(CUM), "measurement-xml-forbidden"),
        (GOOD.format(""), "measurement-xml-invalid"),
        (GOOD.format(CUM + CUM), "measurement-xml-invalid"),
        (GOOD.format('<File Path="/a">abcd</File>' + CUM), "measurement-xml-invalid"),
        (GOOD.format('<File Path="/a">' + "zz" * 48 + "</File>" + CUM), "measurement-xml-invalid"),
        (GOOD.format("<File>" + "00" * 48 + "</File>" + CUM), "measurement-xml-invalid"),
        (GOOD.format('<Pipe Path="/a">' + "00" * 48 + "</Pipe>" + CUM), "measurement-xml-invalid"),
        (GOOD.format(CUM + '<File Path="/a">' + "00" * 48 + "</File>"), "measurement-xml-invalid"),
        (GOOD.replace("SHA384", "MD5").format(CUM), "digest-alg-unsupported"),
        ("<Manifest/>", "measurement-xml-invalid"),
    ],
)
def test_bad_measurements_get_named_errors(xml: str, code: str) -> None:
    with pytest.raises(MeasurementLogError) as caught:
        parse_measurement_xml(xml)
    assert caught.value.code == code, caught.value


# --- the application event log ----------------------------------------------------------------------


def test_corpus_measure_log_round_trips_byte_for_byte() -> None:
    data = corpus_bytes(f"{SECL}/tagent/test/resources/measure-log.json")
    logs = parse_event_log(data)
    assert len(logs) == 24
    assert render_event_log(logs) == data


def test_appending_events_keeps_secl_shape_and_replays() -> None:
    first = application_event(_log(Measured(EntryKind.FILE, "/a", "11" * 48)))
    second = application_event(_log(label="other"))
    data = append_event(append_event(b"", first), second)
    document = json.loads(data)
    assert document == [
        {
            "pcr": {"index": 15, "bank": "SHA256"},
            "tpm_events": [
                {
                    "type_id": EVENT_TYPE_ID,
                    "type_name": EVENT_TYPE_NAME,
                    "tags": list(ev.tags),
                    "measurement": ev.measurement,
                }
                for ev in (first, second)
            ],
        }
    ]
    pcr = bytes(32)
    for ev in (first, second):
        pcr = hashlib.sha256(pcr + bytes.fromhex(ev.measurement)).digest()
    assert replay(parse_event_log(data)) == {PcrRef(15, "SHA256"): pcr}


@pytest.mark.parametrize(
    "data", [b"{}", b"[1]", b'[{"pcr":{"index":15,"bank":"SHA256"}}]', b"not json", b"\xff"]
)
def test_bad_event_logs_are_refused(data: bytes) -> None:
    with pytest.raises(AppEventLogError) as caught:
        append_event(data, application_event(_log()))
    assert caught.value.code == "app-event-log-invalid"


# --- the verifier's rules read what we write -------------------------------------------------------


def test_rules_software_accepts_our_measurement_and_event() -> None:
    log = _log(
        Measured(EntryKind.FILE, "/opt/a", "12" * 48), Measured(EntryKind.DIR, "/opt", "34" * 48, ".*", "")
    )
    xml = render_measurement_xml(log)
    events = parse_event_log(append_event(b"", application_event(log)))
    host = HostManifest({}, {}, {APPLICATION_PCR: events[0]}, "new", measurement_xmls=(xml,))
    integrity = XmlMeasurementLogIntegrity(log.uuid, log.label, log.cumulative_hash).apply(host)
    equals = XmlMeasurementLogEquals(
        log.uuid, log.label, tuple(e.as_flavor_measurement() for e in log.entries)
    ).apply(host)
    assert integrity.faults == () and equals.faults == ()
    changed = XmlMeasurementLogEquals(
        log.uuid, log.label, ({**log.entries[0].as_flavor_measurement(), "value": "00" * 48},)
    )
    names = [f.name for f in changed.apply(host).faults]
    assert "XmlMeasurementLogValueMismatchEntriesSha384" in names
    assert "XmlMeasurementLogContainsUnexpectedEntries" in names
