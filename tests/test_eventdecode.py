"""Event descriptions over whole corpus logs, and the Secure Boot state read from verified events."""

from __future__ import annotations

import pytest

from secl.core.eventdecode import describe_event, secure_boot_state
from secl.core.eventlog import parse_event_log
from secl.core.eventtypes import EventType
from secl.core.hashalg import HashAlg
from tests.corpus import CORPUS_LOGS, corpus_bytes, expected


@pytest.mark.parametrize("relative", CORPUS_LOGS)
def test_every_event_of_every_corpus_log_gets_a_description(relative: str):
    log = parse_event_log(corpus_bytes(relative))
    undecodable = []
    for event in log.events:
        description = describe_event(event)
        assert description.summary
        if description.summary.startswith("undecodable"):
            undecodable.append((event.number, event.type_name, description.summary))
    assert undecodable == []


@pytest.mark.parametrize(
    ("relative", "enabled"),
    [
        # keylime's create-mb-policy tests expect these two verdicts.
        ("keylime/test/data/create-mb-policy/binary_bios_measurements", False),
        ("keylime/test/data/create-mb-policy/binary_bios_measurements-secureboot", True),
        ("go-tpm-tools/eventlogs/ubuntu-2104-no-secure-boot.bin", False),
        # The Arch workstation logs a SecureBoot variable with zero-length data: unknown, not "off".
        ("go-tpm-tools/eventlogs/arch-linux-workstation.bin", None),
    ],
)
def test_secure_boot_state(relative: str, enabled: bool | None):
    log = parse_event_log(corpus_bytes(relative))
    state = secure_boot_state(log.events)
    assert state.secure_boot is enabled
    assert set(state.measured_databases) >= {"PK", "KEK", "db", "dbx"}


def test_secure_boot_state_from_a_verified_log():
    relative = "go-tpm-tools/eventlogs/ubuntu-2104-no-secure-boot.bin"
    pcrs = expected("go-tpm-tools_server_eventlog_test.json")[relative]["expected_pcrs"]["sha256"]
    log = parse_event_log(corpus_bytes(relative))
    verified = log.verify({HashAlg.SHA256: {7: bytes.fromhex(pcrs["7"])}})
    assert {e.pcr for e in verified.events} == {7}
    assert secure_boot_state(verified.events).secure_boot is False


def test_image_paths_and_command_lines_are_readable():
    log = parse_event_log(corpus_bytes("tpm2-tools/test/integration/fixtures/event-bootorder.bin"))
    apps = [describe_event(e) for e in log.events if e.type == EventType.EV_EFI_BOOT_SERVICES_APPLICATION]
    assert any("File(\\EFI\\BOOT\\BOOTX64.EFI)" in d.summary for d in apps)
    cos = parse_event_log(corpus_bytes("go-tpm-tools/eventlogs/cos-85-amd-sev.bin"))
    ipl = [describe_event(e).summary for e in cos.events if e.type == EventType.EV_IPL]
    assert any(s.startswith("kernel_cmdline: /syslinux/vmlinuz.A") for s in ipl)


def test_linux_stub_tagged_events_are_named():
    log = parse_event_log(corpus_bytes("ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin"))
    tags = [describe_event(e).summary for e in log.events if e.type == EventType.EV_EVENT_TAG]
    assert tags == ["LOADED_IMAGE::LoadOptions", "Linux initrd"]
