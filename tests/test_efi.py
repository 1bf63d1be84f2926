"""Tests of the UEFI / TCG event data decoders (secl.core.efi).

The oracle is tpm2-tools' own decoding of its fixture logs: ``event-pretty/*.yaml`` (device paths as text) and
``event-raw/*.yaml`` (the same events with device paths as hex). Every event of every log is decoded from the
binary log and compared with what tpm2-tools printed for it. Where tpm2-tools is wrong or differs from the
UEFI text form on purpose, the difference is listed in ``KNOWN_DIFFERENCES`` with the reason.
"""

from __future__ import annotations

import re
import struct
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from secl.core import efi
from secl.core.errors import EventLogError
from tests.corpus import corpus_path

FIXTURES = "tpm2-tools/test/integration/fixtures"
LOGS = [
    "event-arch-linux.bin",
    "event-bootorder.bin",
    "event-gce-ubuntu-2104-log.bin",
    "event-moklisttrusted.bin",
    "event-postcode.bin",
    "event-sd-boot-fedora37.bin",
    "event-uefi-sha1-log.bin",
    "event-uefiaction.bin",
    "event-uefiservices.bin",
    "event-uefivar.bin",
]

# tpm2-tools text -> our text, for device paths where tpm2-tools drops the comma between the two IPv4
# addresses and leaves out the protocol and DHCP fields. We print the UEFI text form instead.
IPV4_TPM2_TOOLS = "MAC(0cc47aff601c,1)/IPv4(0.0.0.00.0.0.0,0,0)"
IPV4_OURS = "MAC(0cc47aff601c,1)/IPv4(0.0.0.0,0x0,DHCP,0.0.0.0,0.0.0.0,0.0.0.0)"

KNOWN_DIFFERENCES = {
    "zero-length flag": "tpm2-tools prints Enabled: 'No' for a SecureBoot variable with no data; we say unknown",
    "shim certificate": "tpm2-tools splits shim's bare vendor certificate into a fake owner GUID and data",
    "ipv4 text": "tpm2-tools' IPv4() text runs the two addresses together; we print the UEFI text form",
}


# ---------------------------------------------------------------------------------------------------------
# Oracle loading. The binary logs are split here with a minimal framing (secl.core.eventlog owns the real
# one) so that these tests depend on nothing but the decoders under test.


def _frame(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (event type, event data) for a TCG 1.2 or crypto-agile log."""
    _pcr, event_type, _digest, size = struct.unpack_from("<II20sI", data, 0)
    first = data[32 : 32 + size]
    yield event_type, first
    pos = 32 + size
    if not first.startswith(b"Spec ID Event03\0"):
        while pos + 32 <= len(data):
            _pcr, event_type, _digest, size = struct.unpack_from("<II20sI", data, pos)
            yield event_type, data[pos + 32 : pos + 32 + size]
            pos += 32 + size
        return
    count = struct.unpack_from("<I", first, 24)[0]
    sizes = dict(struct.unpack_from("<HH", first, 28 + 4 * i) for i in range(count))
    while pos + 12 <= len(data):
        _pcr, event_type, digests = struct.unpack_from("<III", data, pos)
        pos += 12
        for _ in range(digests):
            pos += 2 + sizes[struct.unpack_from("<H", data, pos)[0]]
        size = struct.unpack_from("<I", data, pos)[0]
        yield event_type, data[pos + 4 : pos + 4 + size]
        pos += 4 + size


def _yaml_events(path: str) -> list[dict[str, Any]]:
    text = corpus_path(path).read_text()
    events = yaml.safe_load(text)["events"]
    if isinstance(events, list):
        return events
    # tpm2-tools writes TCG 1.2 logs without list markers, so YAML sees one mapping with repeated keys.
    body = text.split("events:\n", 1)[1].split("\npcrs:", 1)[0]
    chunks = [c for c in re.split(r"(?m)^(?=  PCRIndex:)", body) if c.strip()]
    return [yaml.safe_load(re.sub(r"(?m)^  ", "", chunk)) for chunk in chunks]


def _oracle(log: str) -> list[tuple[int, bytes, dict[str, Any], dict[str, Any]]]:
    """Pair every binary event with tpm2-tools' pretty and raw decodings of it."""
    events = list(_frame(corpus_path(f"{FIXTURES}/{log}").read_bytes()))
    pretty = _yaml_events(f"{FIXTURES}/event-pretty/{log}.yaml")
    raw = _yaml_events(f"{FIXTURES}/event-raw/{log}.yaml")
    assert len(events) == len(pretty) == len(raw), log
    for index, (p, r) in enumerate(zip(pretty, raw, strict=True)):
        assert p.get("EventNum", index) == r.get("EventNum", index) == index
    return [(t, d, p, r) for (t, d), p, r in zip(events, pretty, raw, strict=True)]


# ---------------------------------------------------------------------------------------------------------
# Comparators: each checks our decoding of one event against tpm2-tools' and returns a note when the
# comparison hit a known difference.


def _guid_bytes(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


def _check_signature_lists(value: efi.VariableValue | None, expected: list[dict[str, Any]]) -> None:
    assert isinstance(value, efi.SignatureDatabase)
    assert len(value.lists) == len(expected)
    for ours, theirs in zip(value.lists, expected, strict=True):
        assert ours.signature_type == theirs["SignatureType"]
        assert (ours.list_size, ours.header_size) == (
            theirs["SignatureListSize"],
            theirs["SignatureHeaderSize"],
        )
        assert ours.signature_size == theirs["SignatureSize"]
        got = [(s.owner, s.data.hex()) for s in ours.signatures]
        assert got == [(k["SignatureOwner"], k["SignatureData"]) for k in theirs["Keys"]]


def _check_load_option(var: efi.EFIVariable, pretty: dict[str, Any], raw: dict[str, Any]) -> None:
    option = var.value
    assert isinstance(option, efi.LoadOption), var.value_error
    assert option.active == (pretty["Enabled"] == "Yes")
    assert option.file_path_list_length == pretty["FilePathListLength"]
    assert option.description == pretty["Description"]
    assert option.device_path == pretty["DevicePath"]
    # The raw oracle prints the file path list and optional data together as hex.
    assert var.data.endswith(bytes.fromhex(raw["DevicePath"]))


def _check_variable(kind: str, data: bytes, pretty: dict[str, Any], raw: dict[str, Any]) -> str | None:
    var = efi.parse_variable_data(data, authority=kind == "EV_EFI_VARIABLE_AUTHORITY")
    assert (var.vendor_guid, var.name) == (pretty["VariableName"], pretty["UnicodeName"])
    assert len(var.data) == pretty["VariableDataLength"]
    assert var.value_error is None
    expected = pretty.get("VariableData")
    if expected is None:
        assert var.data == b""
    elif isinstance(expected, str):  # Older tpm2-tools printed every value as hex.
        assert var.data.hex() == expected
    elif isinstance(expected, dict) and set(expected) == {"Enabled"}:
        assert isinstance(var.value, efi.FlagValue)
        if not var.data:
            assert var.value.enabled is None and expected["Enabled"] == "No"
            return "zero-length flag"
        assert var.value.enabled == (expected["Enabled"] == "Yes")
    elif isinstance(expected, dict) and "String" in expected:
        assert isinstance(var.value, efi.TextValue) and var.value.text == expected["String"]
    elif isinstance(expected, dict):
        _check_load_option(var, expected, raw["VariableData"])
    elif all(isinstance(item, str) for item in expected):
        assert isinstance(var.value, efi.BootOrder)
        assert [f"Boot{n:04X}" for n in var.value.entries] == expected
    elif "SignatureType" in expected[0]:
        _check_signature_lists(var.value, expected)
    else:  # An authority event: tpm2-tools reads it as one EFI_SIGNATURE_DATA.
        (entry,) = expected
        assert _guid_bytes(entry["SignatureOwner"]) + bytes.fromhex(entry["SignatureData"]) == var.data
        assert isinstance(var.value, efi.SignatureData)
        if var.value.owner is None:
            return "shim certificate"
        assert var.value.owner == entry["SignatureOwner"]
    return None


def _check_image(kind: str, data: bytes, pretty: dict[str, Any], raw: dict[str, Any]) -> str | None:
    image = efi.parse_image_load_event(data)
    assert image.location == pretty["ImageLocationInMemory"]
    assert image.length == pretty["ImageLengthInMemory"]
    assert image.link_time_address == pretty["ImageLinkTimeAddress"]
    assert image.device_path_length == pretty["LengthOfDevicePath"]
    assert data[32:].hex() == raw["DevicePath"]
    if pretty["DevicePath"].endswith(IPV4_TPM2_TOOLS):
        assert image.device_path == pretty["DevicePath"].replace(IPV4_TPM2_TOOLS, IPV4_OURS)
        return "ipv4 text"
    assert image.device_path == pretty["DevicePath"]
    return None


def _check_blob(kind: str, data: bytes, pretty: Any, raw: Any) -> str | None:
    decoded = efi.decode_event_data(efi.EventType[kind], data)
    blob = decoded.blob if isinstance(decoded, efi.StringEvent) else decoded
    assert isinstance(blob, efi.FirmwareBlob)
    assert (blob.base, blob.length) == (pretty["BlobBase"], pretty["BlobLength"])
    return None


def _check_gpt(kind: str, data: bytes, pretty: Any, raw: Any) -> str | None:
    gpt = efi.parse_gpt_event(data)
    if isinstance(pretty, str):
        assert data.hex() == pretty
        return None
    header = pretty["Header"]
    assert gpt.disk_guid == header["DiskGUID"]
    assert (gpt.my_lba, gpt.alternate_lba) == (header["MyLBA"], header["AlternateLBA"])
    assert (gpt.first_usable_lba, gpt.last_usable_lba) == (header["FirstUsableLBA"], header["LastUsableLBA"])
    assert gpt.header_crc32 == header["HeaderCRC32"]
    assert gpt.partition_entry_array_crc32 == header["PartitionEntryArrayCRC32"]
    assert len(gpt.partitions) == pretty["NumberOfPartitions"]
    for ours, theirs in zip(gpt.partitions, pretty["Partitions"], strict=True):
        assert (ours.type_guid, ours.unique_guid) == (
            theirs["PartitionTypeGUID"],
            theirs["UniquePartitionGUID"],
        )
        assert (ours.starting_lba, ours.ending_lba) == (theirs["StartingLBA"], theirs["EndingLBA"])
        assert (ours.attributes, ours.name) == (theirs["Attributes"], theirs["PartitionName"])
    return None


def _check_text(kind: str, data: bytes, pretty: Any, raw: Any) -> str | None:
    event = efi.decode_string_event(data, efi.EventType[kind])
    expected = pretty["String"] if isinstance(pretty, dict) else pretty
    if kind in ("EV_IPL", "EV_EFI_ACTION"):
        # tpm2-tools prints the bytes as they are; UTF-16 shows up as characters separated by NULs.
        assert expected.encode("latin-1") == data
        want = data[: len(data) & ~1].decode("utf-16-le") if event.kind == "utf-16" else expected
        assert event.text == want.split("\0", 1)[0]
    else:
        assert data.hex() == expected
        if kind == "EV_SEPARATOR":
            assert (event.kind, event.text) == ("separator", "separator")
    return None


def _check_no_action(kind: str, data: bytes, pretty: Any, raw: Any) -> str | None:
    assert efi.parse_no_action_event(data).signature == raw["SpecID"][0]["Signature"]
    return None


CHECKS: dict[str, Callable[[str, bytes, Any, Any], str | None]] = {
    "EV_EFI_VARIABLE_DRIVER_CONFIG": _check_variable,
    "EV_EFI_VARIABLE_BOOT": _check_variable,
    "EV_EFI_VARIABLE_AUTHORITY": _check_variable,
    "EV_EFI_BOOT_SERVICES_APPLICATION": _check_image,
    "EV_EFI_BOOT_SERVICES_DRIVER": _check_image,
    "EV_EFI_PLATFORM_FIRMWARE_BLOB": _check_blob,
    "EV_POST_CODE": _check_blob,
    "EV_EFI_GPT_EVENT": _check_gpt,
    "EV_IPL": _check_text,
    "EV_EFI_ACTION": _check_text,
    "EV_SEPARATOR": _check_text,
    "EV_S_CRTM_VERSION": _check_text,
    "EV_EVENT_TAG": _check_text,
    "EV_NONHOST_INFO": _check_text,
}


def _compare_log(log: str) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    for index, (event_type, data, pretty, raw) in enumerate(_oracle(log)):
        kind = pretty["EventType"]
        assert efi.EventType[kind] == event_type
        if kind == "EV_NO_ACTION":
            note = _check_no_action(kind, data, pretty, raw)
        else:
            try:
                note = CHECKS[kind](kind, data, pretty["Event"], raw["Event"])
            except AssertionError as exc:
                raise AssertionError(f"{log} event {index} ({kind}): {exc}") from exc
        decoded = efi.decode_event_data(event_type, data)
        assert decoded.describe() and isinstance(decoded.as_dict(), dict)
        outcomes[note or "match"] += 1
    return outcomes


@pytest.mark.parametrize("log", LOGS)
def test_every_event_matches_tpm2_tools(log: str) -> None:
    outcomes = _compare_log(log)
    assert set(outcomes) <= {"match", *KNOWN_DIFFERENCES}


def test_oracle_coverage_and_known_differences() -> None:
    totals = sum((_compare_log(log) for log in LOGS), Counter())
    # 448 events in the ten logs; each known difference is pinned so that a new one cannot slip in.
    assert totals == Counter({"match": 444, "zero-length flag": 2, "shim certificate": 1, "ipv4 text": 1})


def test_moklisttrusted_hex_dump_decodes() -> None:
    dump = yaml.safe_load(corpus_path(f"{FIXTURES}/event-moklisttrusted-hex.yaml").read_text())
    binary = [
        data for _type, data in _frame(corpus_path(f"{FIXTURES}/event-moklisttrusted.bin").read_bytes())
    ]
    assert [bytes.fromhex(e["content"]["event_data"]) for e in dump] == binary
    names = []
    for entry in dump:
        decoded = efi.decode_event_data(efi.EventType[entry["content"]["event_type"]], binary[len(names)])
        names.append(decoded.name if isinstance(decoded, efi.EFIVariable) else None)
    assert {"MokListTrusted", "SbatLevel", "Shim"} <= set(names)


# ---------------------------------------------------------------------------------------------------------
# Hand-built structures


def _variable(name: str, data: bytes, guid: str = "8be4df61-93ca-11d2-aa0d-00e098032b8c") -> bytes:
    encoded = name.encode("utf-16-le")
    return _guid_bytes(guid) + struct.pack("<QQ", len(name), len(data)) + encoded + data


def _node(node_type: int, subtype: int, body: bytes) -> bytes:
    return struct.pack("<BBH", node_type, subtype, 4 + len(body)) + body


END = _node(0x7F, 0xFF, b"")


def test_format_guid_is_mixed_endian() -> None:
    raw = bytes.fromhex("61dfe48bca93d211aa0d00e098032b8c")
    assert efi.format_guid(raw) == "8be4df61-93ca-11d2-aa0d-00e098032b8c"
    assert efi.guid_name(efi.format_guid(raw)) == "EFI global variable"
    with pytest.raises(EventLogError):
        efi.format_guid(raw[:15])


def test_zero_length_secure_boot_is_unknown() -> None:
    var = efi.parse_variable_data(_variable("SecureBoot", b""))
    assert isinstance(var.value, efi.FlagValue) and var.value.enabled is None
    assert var.describe() == "SecureBoot (EFI global variable): unknown/empty"
    assert efi.secure_boot_state([var]).secure_boot is None


def test_secure_boot_state_summary() -> None:
    variables = [
        efi.parse_variable_data(_variable("SecureBoot", b"\x01")),
        efi.parse_variable_data(_variable("SetupMode", b"\x00")),
        efi.parse_variable_data(_variable("PK", b"")),
        efi.parse_variable_data(_variable("db", b"", "d719b2cb-3d3a-4596-a3bc-dad00e67656f")),
    ]
    state = efi.secure_boot_state(variables)
    assert (state.secure_boot, state.setup_mode, state.audit_mode) == (True, False, None)
    assert state.measured_databases == ("PK", "db")
    assert state.describe() == "Secure Boot enabled; measured: PK, db"
    assert state.as_dict()["measured_databases"] == ["PK", "db"]


def test_malformed_value_keeps_the_variable() -> None:
    var = efi.parse_variable_data(_variable("BootOrder", b"\x01\x00\x02"))
    assert var.value is None and var.value_error and "odd length" in var.value_error
    assert var.data == b"\x01\x00\x02"


def test_signature_list_with_zero_signature_size_is_rejected() -> None:
    bad = _guid_bytes("c1c41626-504c-4092-aca9-41f936934328") + struct.pack("<III", 28, 0, 0)
    with pytest.raises(EventLogError) as info:
        efi.parse_signature_lists(bad)
    assert info.value.code == "efi-signature-list-invalid"


@pytest.mark.parametrize(
    "data",
    [
        _node(1, 1, b"\x00\x01")[:2] + b"\x00\x00" + b"\x00\x01",  # Node length 0.
        _node(1, 1, b"\x00\x01")[:2] + b"\x02\x00" + b"\x00\x01",  # Node length 2.
        _node(1, 1, b"\x00\x01")[:2] + b"\x40\x00" + b"\x00\x01",  # Runs past the data.
        b"\x01\x01\x06",  # Header truncated.
        _node(4, 1, b"\x01\x00"),  # HD node too short for its fields.
    ],
)
def test_malformed_device_paths_are_rejected(data: bytes) -> None:
    with pytest.raises(EventLogError) as info:
        efi.device_path_to_text(data)
    assert info.value.code == "efi-device-path-invalid"


def test_device_path_text_forms() -> None:
    nvme = _node(3, 23, struct.pack("<I", 1) + bytes(range(8)))
    uri = _node(3, 24, b"http://example/boot.efi")
    instance = _node(0x7F, 0x01, b"")
    unknown = _node(0x42, 7, b"\xab")
    path = _node(2, 1, struct.pack("<II", 0x0A0841D0, 0)) + nvme + instance + uri + unknown + END + b"junk"
    assert efi.device_path_to_text(path) == (
        "PcieRoot(0x0)/NVMe(0x1,07-06-05-04-03-02-01-00),Uri(http://example/boot.efi)/Path(66,7,ab)"
    )
    assert efi.device_path_to_text(b"") == ""


def test_image_load_event_with_empty_device_path() -> None:
    image = efi.parse_image_load_event(struct.pack("<QQQQ", 0x1000, 10, 0, 0))
    assert image.device_path == "" and image.describe() == "image at 0x1000 (10 bytes) from (no device path)"
    with pytest.raises(EventLogError):
        efi.parse_image_load_event(struct.pack("<QQQQ", 0x1000, 10, 0, 8) + END)


def test_truncated_structures_raise() -> None:
    for decoder, data in [
        (efi.parse_firmware_blob, b"\x00" * 15),
        (efi.parse_firmware_blob2, b"\x05abc"),
        (efi.parse_handoff_tables, struct.pack("<Q", 2**40)),
        (efi.parse_gpt_event, b"EFI PART" + b"\x00" * 10),
        (efi.parse_variable_data, _variable("Boot0001", b"")[:-3]),
        (efi.parse_load_option, struct.pack("<IH", 1, 0) + b"A\x00"),  # Description never ends.
        (efi.parse_no_action_event, b"StartupLocality\x00"),
    ]:
        with pytest.raises(EventLogError) as info:
            decoder(data)
        assert info.value.code.startswith("efi-"), decoder


def test_no_action_payloads() -> None:
    locality = efi.parse_no_action_event(b"StartupLocality\x00\x03")
    assert (locality.locality, locality.describe()) == (3, "StartupLocality 3")

    def sized(text: str) -> bytes:
        return bytes([len(text)]) + text.encode()

    guid = "11111111-2222-3333-4444-555555555555"
    body = (
        struct.pack("<I", 7) + _guid_bytes(guid) + sized("ACME") + sized("Box") + sized("1.0") + sized("FW")
    )
    body += struct.pack("<I", 9) + sized("2.3")
    event = efi.parse_no_action_event(b"SP800-155 Event\x00" + body)
    assert event.sp800_155 is not None
    assert event.sp800_155.reference_manifest_guid == guid
    assert event.describe() == "SP800-155 Event: ACME Box 1.0, firmware FW 2.3"
    event3 = efi.parse_no_action_event(b"SP800-155 Event3" + body + struct.pack("<II", 1, 3) + b"rim")
    assert event3.sp800_155 is not None and event3.sp800_155.rim_locator == b""  # Incomplete locators.
    assert efi.parse_no_action_event(b"NvIndexInstance\x00" + b"x").signature == "NvIndexInstance"
    assert efi.parse_no_action_event(b"whatever").signature == ""


def test_string_events() -> None:
    assert efi.decode_string_event(b"\xff" * 4, efi.EventType.EV_SEPARATOR).text == "error separator"
    assert efi.decode_string_event(b"\x01\x00\x00\x00", efi.EventType.EV_SEPARATOR).kind == "hex"
    assert efi.decode_string_event(b"ACPI DATA", efi.EventType.EV_POST_CODE).text == "ACPI DATA"
    assert efi.decode_string_event(bytes(16), efi.EventType.EV_POST_CODE).kind == "blob"
    assert efi.decode_string_event(b"\x01\x02", efi.EventType.EV_PLATFORM_CONFIG_FLAGS).text == "0102"
    crtm = efi.decode_string_event("v1.0\0".encode("utf-16-le"), efi.EventType.EV_S_CRTM_VERSION)
    assert (crtm.kind, crtm.text) == ("utf-16", "v1.0")
    assert efi.decode_string_event(b"grub_cmd: ls \xe9\0", efi.EventType.EV_IPL).text == "grub_cmd: ls \\xe9"


def test_handoff_tables() -> None:
    acpi = _guid_bytes("8868e871-e4f1-11d3-bc22-0080c73c8881")
    tables = efi.parse_handoff_tables(struct.pack("<Q", 1) + acpi + struct.pack("<Q", 0x7FF0))
    assert tables.describe() == "1 handoff table(s): ACPI 2.0 table"
    tables2 = efi.parse_handoff_tables2(b"\x03SMB" + struct.pack("<Q", 0))
    assert (tables2.description, tables2.tables) == ("SMB", ())


# ---------------------------------------------------------------------------------------------------------
# Robustness: arbitrary bytes give a result or EventLogError, and every decoder terminates.

DECODERS: list[Callable[[bytes], object]] = [
    efi.device_path_to_text,
    efi.parse_variable_data,
    lambda d: efi.parse_variable_data(d, authority=True),
    efi.parse_load_option,
    efi.parse_signature_lists,
    efi.parse_image_load_event,
    efi.parse_firmware_blob,
    efi.parse_firmware_blob2,
    efi.parse_handoff_tables,
    efi.parse_handoff_tables2,
    efi.parse_gpt_event,
    efi.parse_no_action_event,
    lambda d: efi.decode_string_event(d, efi.EventType.EV_IPL),
    lambda d: efi.decode_string_event(d, efi.EventType.EV_POST_CODE),
    lambda d: efi.decode_string_event(d, efi.EventType.EV_S_CRTM_VERSION),
]


def _run_all(data: bytes) -> int:
    """Run every decoder on ``data``; return how many answered (a result or EventLogError, nothing else)."""
    answered = 0
    for decoder in DECODERS:
        answered += 1
        try:
            result = decoder(data)
        except EventLogError as exc:
            assert exc.code
            continue
        if isinstance(result, efi.EFIVariable | efi.NoActionEvent | efi.StringEvent | efi.ImageLoadEvent):
            assert isinstance(result.describe(), str) and isinstance(result.as_dict(), dict)
    return answered


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    assert _run_all(data) == len(DECODERS)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40)), max_size=6))
def test_arbitrary_device_path_nodes_never_crash(nodes: list[tuple[int, int, bytes]]) -> None:
    path = b"".join(_node(t, s, body) for t, s, body in nodes)
    assert _run_all(path) == len(DECODERS)
    wrapped = _variable("Boot0001", struct.pack("<IH", 1, len(path)) + "x\0".encode("utf-16-le") + path)
    assert _run_all(wrapped) == len(DECODERS)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.binary(max_size=64))
def test_arbitrary_variable_headers_never_crash(name_chars: int, data_size: int, tail: bytes) -> None:
    assert _run_all(bytes(16) + struct.pack("<QQ", name_chars, data_size) + tail) == len(DECODERS)
