"""Firmware event logs from the corpus: every expected PCR value replays, every quirk is reported."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secl.core.errors import EventLogError, EvidenceError, ReplayError
from secl.core.eventlog import (
    QUIRK_SHIM_AUTHORITY_EXTRA_BYTE,
    parse_event_log,
    pcr_banks_from_json,
    pcr_banks_to_json,
)
from secl.core.eventtypes import EventType
from secl.core.hashalg import HashAlg
from tests.corpus import corpus_bytes, expected

EXPECTATION_FILES = (
    "go-attestation_tests.json",
    "go-tpm-tools_server_eventlog_test.json",
    "misc_eventlog_expectations.json",
    "ovmf_eventlog.json",
    "tpm2-tools_eventlog_yaml_pcrs.json",
)

# PCRs an expectation lists that a firmware log cannot speak for: PCR 10 is IMA's (the kernel's runtime
# log), so the machines' real PCR 10 is not in their boot logs.
NOT_IN_BOOT_LOG = {10}

# The one log whose naive replay must NOT match (see corpus INDEX): the firmware extended the
# ExitBootServices events into PCR 5 without logging them.
EBS_MISSING = "go-attestation/attest/testdata/ebs_event_missing_eventlog"


def _expected_cases() -> list[tuple[str, dict]]:
    cases = []
    for name in EXPECTATION_FILES:
        for log_path, entry in expected(name).items():
            if log_path.startswith("_") or not entry.get("expected_pcrs"):
                continue
            pcrs = {
                HashAlg.from_name(bank): {
                    int(i): bytes.fromhex(v) for i, v in values.items() if int(i) not in NOT_IN_BOOT_LOG
                }
                for bank, values in entry["expected_pcrs"].items()
            }
            cases.append((log_path, pcrs))
    return cases


EXPECTED_CASES = _expected_cases()


def test_expectations_cover_the_corpus_logs():
    # Guards against the parametrization silently shrinking if an expectation file changes shape.
    assert len(EXPECTED_CASES) >= 24


@pytest.mark.parametrize(("log_path", "pcrs"), EXPECTED_CASES, ids=[c[0] for c in EXPECTED_CASES])
def test_corpus_log_replays_to_expected_pcrs(log_path: str, pcrs: dict):
    log = parse_event_log(corpus_bytes(log_path))
    if log_path == EBS_MISSING:
        # A TCG 1.2 log: only its SHA-1 bank can be replayed; the expectation also lists SHA-256.
        with pytest.raises(ReplayError) as excinfo:
            log.verify({HashAlg.SHA1: pcrs[HashAlg.SHA1]})
        assert set(excinfo.value.mismatches) == {("sha1", 5)}
        return
    verified = log.verify(pcrs)
    assert verified.workarounds == ()
    assert verified.events, "a verified log must vouch for at least one event"


def test_missing_exit_boot_services_events_are_reported_as_a_named_workaround():
    pcrs = {HashAlg.SHA1: dict(EXPECTED_CASES)[EBS_MISSING][HashAlg.SHA1]}
    log = parse_event_log(corpus_bytes(EBS_MISSING))
    verified = log.verify(pcrs, allow_workarounds=True)
    assert verified.workarounds == ("ebs-events-not-logged",)
    # The workaround fixes PCR 5 only: a wrong PCR 4 is still a mismatch.
    tampered = {bank: dict(values) for bank, values in pcrs.items()}
    tampered[HashAlg.SHA1][4] = bytes(20)
    with pytest.raises(ReplayError) as excinfo:
        log.verify(tampered, allow_workarounds=True)
    assert set(excinfo.value.mismatches) == {("sha1", 4)}


def test_tampered_arch_log_fails_against_the_real_machines_pcrs():
    # tpm2-tools' copy of the Arch log was edited (event 23, an EFI application on PCR 4); replaying it
    # against the PCRs read on the real machine (go-tpm-tools) must name PCR 4 and nothing else.
    real = dict(EXPECTED_CASES)["go-tpm-tools/eventlogs/arch-linux-workstation.bin"]
    tampered = parse_event_log(corpus_bytes("tpm2-tools/test/integration/fixtures/event-arch-linux.bin"))
    with pytest.raises(ReplayError) as excinfo:
        tampered.verify(real)
    assert set(excinfo.value.mismatches) == {("sha1", 4), ("sha256", 4)}
    expected_value, replayed = excinfo.value.mismatches[("sha256", 4)]
    assert expected_value == real[HashAlg.SHA256][4] and replayed != expected_value


def test_changing_one_digest_changes_exactly_that_pcr():
    path = "ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin"
    data = bytearray(corpus_bytes(path))
    log = parse_event_log(bytes(data))
    target = next(
        e for e in log.events if e.pcr == 4 and e.type == EventType.EV_EFI_BOOT_SERVICES_APPLICATION
    )
    digest = target.digests[HashAlg.SHA256]
    position = data.index(digest, target.offset)
    data[position] ^= 0x01
    altered = parse_event_log(bytes(data))
    pcrs = dict(EXPECTED_CASES)[path]
    with pytest.raises(ReplayError) as excinfo:
        altered.verify(pcrs)
    assert set(excinfo.value.mismatches) == {("sha256", 4)}


@pytest.mark.parametrize(
    ("log_path", "locality"),
    [
        ("go-tpm-tools/eventlogs/glinux-alex.bin", 3),
        ("ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin", None),
    ],
)
def test_startup_locality(log_path: str, locality: int | None):
    log = parse_event_log(corpus_bytes(log_path))
    assert log.startup_locality == locality
    if locality:
        assert log.initial_value(HashAlg.SHA256, 0) == bytes(31) + bytes([locality])


def test_hcrtm_log_starts_pcr0_at_locality_four_and_has_an_sm3_bank():
    log = parse_event_log(corpus_bytes("tpm2-tss/test/data/fapi/eventlog/binary_measurements_hcrtm.b64"))
    assert log.has_hcrtm
    assert HashAlg.SM3_256 in log.banks
    assert log.initial_value(HashAlg.SHA1, 0) == bytes(19) + b"\x04"
    # tpm2-tss counts 5 measurements on PCR 0 and 111 records on PCRs 0-8 (its count includes the Spec ID).
    assert sum(1 for e in log.iter_extended() if e.pcr == 0) == 5
    assert sum(1 for e in log.events if e.pcr <= 8) == 111


@pytest.mark.parametrize(
    ("log_path", "event_count", "banks"),
    [
        ("go-attestation/attest/testdata/crypto_agile_eventlog", 27, ("sha256",)),
        (
            "go-attestation/attest/testdata/coreos_36_shielded_vm_no_secure_boot_eventlog",
            76,
            ("sha1", "sha256", "sha384"),
        ),
        ("go-attestation/attest/testdata/short_no_action_eventlog", 1, ("sha1",)),
        ("tpm2-tss/test/data/fapi/eventlog/binary_measurements_nuc.b64", 17, ("sha1",)),
        ("tpm2-tss/test/data/fapi/eventlog/binary_measurements_pc_client.b64", 33, ("sha1", "sha256")),
        ("tpm2-tss/test/data/fapi/eventlog/specid-vendordata.b64", 1, ("sha1", "sha256")),
        ("keylime/test/data/mb_log.b64", 102, ("sha256",)),
        ("keylime/test/data/create-mb-policy/binary_bios_measurements", 121, ("sha1", "sha256")),
        ("keylime/test/data/create-mb-policy/binary_bios_measurements-secureboot", 99, ("sha256",)),
        ("rust-keylime/keylime/test-data/uefi_log.bin", 124, ("sha256",)),
        ("tcglog-parser/testdata/binary_bios_measurements", 115, ("sha1", "sha256")),
    ],
)
def test_parse_only_logs_parse(log_path: str, event_count: int, banks: tuple[str, ...]):
    log = parse_event_log(corpus_bytes(log_path))
    assert len(log.events) == event_count
    assert tuple(b.bank_name for b in log.banks) == banks
    assert log.digest_mismatches() == ()


def test_short_log_without_spec_id_is_tcg12_with_a_startup_locality():
    log = parse_event_log(corpus_bytes("go-attestation/attest/testdata/short_no_action_eventlog"))
    assert log.format == "tcg1.2" and log.spec_id is None
    assert log.startup_locality == 3
    assert log.replay() == {HashAlg.SHA1: {}}


def test_spec_id_vendor_info_is_kept():
    log = parse_event_log(corpus_bytes("tpm2-tss/test/data/fapi/eventlog/specid-vendordata.b64"))
    assert log.spec_id is not None
    assert log.spec_id.vendor_info == bytes.fromhex("deadbeef")
    assert log.spec_id.spec_version == (2, 0, 0)


def test_intel_server_log_in_a_memory_window_stops_at_ff_padding():
    log = parse_event_log(corpus_bytes("intel-secl/pkg/tagent/test/eventlog/uefi_event_log.bin"))
    assert len(log.events) == 116
    assert log.padding_bytes == 46917
    assert log.digest_mismatches() == ()


def test_intel_invalid_log_is_caught_by_its_digests():
    valid = parse_event_log(corpus_bytes("intel-secl/pkg/tagent/test/eventlog/uefi_event_log.bin"))
    invalid = parse_event_log(corpus_bytes("intel-secl/pkg/tagent/test/eventlog/uefi_event_log_invalid.bin"))
    # The invalid copy corrupts the BootOrder variable's data but keeps its digests: replay cannot see
    # it, the digest check must.
    assert valid.replay() == invalid.replay()
    assert valid.digest_mismatches() == ()
    mismatches = invalid.digest_mismatches()
    assert {(m.event_number, m.type_name, m.pcr, m.bank.bank_name) for m in mismatches} == {
        (31, "EV_EFI_VARIABLE_BOOT", 1, "sha1"),
        (31, "EV_EFI_VARIABLE_BOOT", 1, "sha256"),
    }
    assert mismatches[0].describe().startswith("event 31 (EV_EFI_VARIABLE_BOOT, PCR 1): sha1 digest")


def test_txt_tboot_log_has_pcr17_and_pcr18_and_zero_padding():
    log = parse_event_log(corpus_bytes("intel-secl/pkg/tagent/test/eventlog/txt-logs.bin"))
    pcrs = {e.pcr for e in log.iter_extended()}
    assert {17, 18} <= pcrs
    assert log.padding_bytes == 6558
    assert all(e.type_name != f"EventType(0x{e.type:08x})" for e in log.iter_extended())
    # A late launch resets PCRs 17/18 to zero; PCRs the launch did not touch keep ff..ff.
    assert log.initial_value(HashAlg.SHA256, 17) == bytes(32)
    assert log.unextended_value(HashAlg.SHA256, 19) == b"\xff" * 32


def test_windows_log_with_pcr_ffffffff_replays_to_its_quoted_pcrs():
    dump = json.loads(corpus_bytes("go-attestation/attest/testdata/windows_gcp_shielded_vm.json"))
    log = parse_event_log(base64.b64decode(dump["Log"]["Raw"]))
    assert log.format == "tcg1.2"
    pcrs = {HashAlg.SHA1: {p["Index"]: base64.b64decode(p["Digest"]) for p in dump["Log"]["PCRs"]}}
    assert len(pcrs[HashAlg.SHA1]) == 24
    log.verify(pcrs)


def test_option_rom_log_skips_events_on_pcr_ffffffff():
    log = parse_event_log(corpus_bytes("go-attestation/attest/testdata/option_rom_eventlog"))
    never_extended = [e for e in log.events if e.pcr == 0xFFFFFFFF]
    assert len(never_extended) == 1
    assert not never_extended[0].is_extended
    assert 0xFFFFFFFF not in log.replay()[HashAlg.SHA1]


def test_tpm12_linux_log_replays_except_ima_pcr10():
    dump = json.loads(corpus_bytes("go-attestation/attest/testdata/linux_tpm12.json"))
    log = parse_event_log(base64.b64decode(dump["Log"]["Raw"]))
    pcrs = {
        HashAlg.SHA1: {
            p["Index"]: base64.b64decode(p["Digest"]) for p in dump["Log"]["PCRs"] if p["Index"] != 10
        }
    }
    assert len(pcrs[HashAlg.SHA1]) == 23
    log.verify(pcrs)


def test_shim_authority_quirk_is_reported_not_hidden():
    log = parse_event_log(corpus_bytes("go-tpm-tools/eventlogs/cos-85-amd-sev.bin"))
    assert log.digest_mismatches() == ()
    quirks = log.digest_quirks()
    assert [(q.event_number, q.quirk) for q in quirks] == [
        (24, QUIRK_SHIM_AUTHORITY_EXTRA_BYTE),
        (42, QUIRK_SHIM_AUTHORITY_EXTRA_BYTE),
    ]


def test_a_separator_with_a_wrong_digest_is_reported():
    log = parse_event_log(corpus_bytes("ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin"))
    separator = next(e for e in log.events if e.type == EventType.EV_SEPARATOR)
    data = bytearray(corpus_bytes("ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin"))
    end = log.events[separator.number + 1].offset  # the record ends where the next one starts
    data[end - 1] ^= 0xFF  # the last byte of the separator's data
    mismatches = parse_event_log(bytes(data)).digest_mismatches()
    assert {(m.event_number, m.bank.bank_name) for m in mismatches} == {
        (separator.number, "sha1"),
        (separator.number, "sha256"),
    }


@pytest.mark.parametrize(
    ("log_path", "code"),
    [
        ("intel-secl/pkg/tagent/test/eventlog/empty.bin", "eventlog-empty"),
        ("intel-secl/pkg/tagent/test/eventlog/incomplete_tcg_spec_event.bin", "eventlog-malformed"),
        ("keylime/test/data/create-mb-policy/binary_bios_measurements-bogus", "eventlog-malformed"),
        ("keylime/test/data/create-mb-policy/binary_bios_measurements-empty", "eventlog-empty"),
        # tpm2-tools' copy declares the Spec ID event 4 bytes shorter than its own vendor info (tpm2-tss
        # ships the well-formed original); reading past an event's declared size is refused.
        ("tpm2-tools/test/integration/fixtures/specid-vendordata.bin", "eventlog-bad-spec-id"),
    ],
)
def test_negative_corpus_logs_give_a_clear_error(log_path: str, code: str):
    with pytest.raises(EventLogError) as excinfo:
        parse_event_log(corpus_bytes(log_path))
    assert excinfo.value.code == code
    assert excinfo.value.message


def test_truncated_log_names_the_event_and_offset():
    data = corpus_bytes("ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin")
    with pytest.raises(EventLogError) as excinfo:
        parse_event_log(data[:1000])
    assert excinfo.value.code == "eventlog-truncated"
    assert "event " in excinfo.value.message and "offset" in excinfo.value.message


def test_pcr_json_round_trip():
    log = parse_event_log(corpus_bytes("go-tpm-tools/eventlogs/ubuntu-2104-no-dbx.bin"))
    replayed = log.replay()
    as_json = pcr_banks_to_json(replayed)
    assert set(as_json) == {"sha1", "sha256", "sha384"}
    assert pcr_banks_from_json(json.loads(json.dumps(as_json))) == replayed


def test_replay_is_sha_extend_from_zero():
    # An independent, minimal replay of PCR 7 (sha256) to pin the extend rule itself.
    log = parse_event_log(corpus_bytes("ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin"))
    value = bytes(32)
    for event in log.events:
        if event.pcr == 7 and event.type != EventType.EV_NO_ACTION:
            value = hashlib.sha256(value + event.digests[HashAlg.SHA256]).digest()
    assert log.replay()[HashAlg.SHA256][7] == value


_REAL_LOGS = [
    "ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin",
    "go-attestation/attest/testdata/option_rom_eventlog",
    "intel-secl/pkg/tagent/test/eventlog/txt-logs.bin",
]


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_any_bytes_parse_or_raise_the_librarys_error(data: bytes):
    try:
        log = parse_event_log(data)
    except EventLogError:
        return
    log.replay()
    log.check_event_digests()


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(_REAL_LOGS),
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=255),
    st.booleans(),
)
def test_mutated_real_logs_parse_or_raise_the_librarys_error(
    path: str, position: int, value: int, truncate: bool
):
    data = bytearray(corpus_bytes(path))
    position %= len(data)
    if truncate:
        del data[position:]
    else:
        data[position] = value
    try:
        log = parse_event_log(bytes(data))
    except EventLogError:
        return
    log.replay()
    log.check_event_digests()


def test_pcr_values_json_refuses_what_is_not_one_digest_per_pcr():
    good = {"SHA256": {"0": "00" * 32, "7": "ab" * 32}}
    assert pcr_banks_from_json(good)[HashAlg.SHA256] == {0: b"\0" * 32, 7: b"\xab" * 32}
    bad = [
        ({"SHA256": {"x": "00" * 32}}, "PCR SHA256:'x' is not a PCR number"),
        ({"SHA256": {"1": "zz"}}, "PCR SHA256:1 value 'zz' has 'z' at position 0, which is not a hex digit"),
        (
            {"SHA256": {"1": "0" * 63}},
            "PCR SHA256:1 value '" + "0" * 63 + "' has an odd number of hex digits",
        ),
        ({"SHA256": {"1": None}}, "PCR SHA256:1 value None is not a hex string"),
        ({"SHA256": {"1": "00" * 20}}, "wrong index or digest size"),
        ({"SHA256": {"32": "00" * 32}}, "wrong index or digest size"),
        ({"SHA256": {"1": "00" * 32, "01": "11" * 32}}, "given twice"),
        ({"SHA256": ["00" * 32]}, "must map PCR numbers to hex"),
    ]
    for document, message in bad:
        with pytest.raises(EvidenceError) as refused:
            pcr_banks_from_json(document)
        assert refused.value.code == "pcr-values-malformed" and message in refused.value.message, document
