"""TCG PC Client firmware event logs: parse, replay, and check event digests.

Two encodings exist. The TCG 1.2 format is a run of ``TCG_PCR_EVENT`` records with one SHA-1 digest each;
Windows writes it even on TPM 2.0 machines. The crypto-agile format starts with one such record holding the
"Spec ID Event03" (which declares the hash banks and their digest sizes) followed by ``TCG_PCR_EVENT2``
records carrying one digest per bank.

Nothing returned by :func:`parse_event_log` is trustworthy on its own: the log is a claim by the host.
Only :meth:`EventLog.verify`, which replays the log against PCR values a quote has vouched for, turns it
into evidence. Names say so: the replayed values of :meth:`EventLog.replay` are *unverified*.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from secl.core.errors import EventLogError, EvidenceError, ReplayError
from secl.core.eventlog_workarounds import WORKAROUNDS
from secl.core.eventtypes import DIGEST_OF_DATA_TYPES, EventType, event_type_name
from secl.core.hashalg import HashAlg
from secl.core.hextext import hex_problem

#: PCR index Windows uses for events that are logged but never extended.
NOT_EXTENDED_PCR = 0xFFFFFFFF

_SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"
_STARTUP_LOCALITY_SIGNATURE = b"StartupLocality\x00"
_TCG12_HEADER = struct.Struct("<II20sI")  # pcr, type, sha1 digest, event size
_AGILE_HEADER = struct.Struct("<III")  # pcr, type, digest count
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
# Bounds that no real log comes near; they stop a hostile size field from driving allocation or loops.
_MAX_EVENT_DATA = 16 * 1024 * 1024
_MAX_ALGORITHMS = 16

LogFormat = Literal["tcg1.2", "crypto-agile"]
PCRBanks = dict[HashAlg, dict[int, bytes]]


@dataclass(frozen=True, slots=True)
class SpecIdEvent:
    """The crypto-agile log's header: which banks the firmware logs, and their digest sizes."""

    platform_class: int
    spec_version: tuple[int, int, int]  # major, minor, errata
    uintn_size: int
    algorithms: tuple[tuple[int, int], ...]  # (TPM_ALG_ID, digest size) in declared order
    vendor_info: bytes


@dataclass(frozen=True, slots=True)
class Event:
    """One log record, exactly as the host claims it (untrusted until the log is verified)."""

    number: int  # position in the log, counting the Spec ID event as 0
    offset: int  # byte offset of the record in the log
    pcr: int
    type: int
    digests: Mapping[HashAlg, bytes]
    data: bytes
    unknown_digests: Mapping[int, bytes] = field(default_factory=dict)  # banks we cannot compute

    @property
    def type_name(self) -> str:
        return event_type_name(self.type)

    @property
    def is_extended(self) -> bool:
        """Whether the firmware extended this event into a PCR (EV_NO_ACTION and PCR 0xFFFFFFFF are not)."""
        return self.type != EventType.EV_NO_ACTION and self.pcr != NOT_EXTENDED_PCR


@dataclass(frozen=True, slots=True)
class DigestMismatch:
    """An event whose logged digest is not the hash of its own data, where the spec says it must be."""

    event_number: int
    pcr: int
    type_name: str
    bank: HashAlg
    logged: bytes
    computed: bytes

    def describe(self) -> str:
        return (
            f"event {self.event_number} ({self.type_name}, PCR {self.pcr}): {self.bank.bank_name} digest "
            f"{self.logged.hex()} is not the hash of its data ({self.computed.hex()})"
        )


@dataclass(frozen=True, slots=True)
class DigestQuirk:
    """An event whose digest matched only under a known firmware or boot-loader quirk (reported, not hidden)."""

    event_number: int
    pcr: int
    type_name: str
    quirk: str

    def describe(self) -> str:
        return f"event {self.event_number} ({self.type_name}, PCR {self.pcr}): digest matches only under {self.quirk}"


@dataclass(frozen=True, slots=True)
class EventLog:
    """A parsed firmware event log. Its events are unverified claims until :meth:`verify` succeeds."""

    format: LogFormat
    spec_id: SpecIdEvent | None
    events: tuple[Event, ...]
    banks: tuple[HashAlg, ...]
    padding_bytes: int  # zero or 0xFF bytes after the last event (a fixed-size memory window)
    startup_locality: int | None  # locality of TPM2_Startup, from a StartupLocality event
    has_hcrtm: bool  # an H-CRTM sequence measured PCR 0 before the firmware ran

    def initial_value(self, bank: HashAlg, pcr: int) -> bytes:
        """The value a PCR holds before the first extend of this boot.

        PCR 0 starts at 00…0L when the firmware started the TPM from locality L, and at 00…04 after an
        H-CRTM sequence. The dynamic-launch PCRs 17-22 are reset to zero by the late launch that logs them.
        """
        size = bank.digest_size
        if pcr == 0:
            if self.has_hcrtm:
                return bytes(size - 1) + b"\x04"
            locality = self.startup_locality
            if locality:
                return bytes(size - 1) + bytes([locality])
        return bytes(size)

    def unextended_value(self, bank: HashAlg, pcr: int) -> bytes:
        """The value of a PCR the log never extends: ff…ff for the dynamic-launch PCRs 17-22 (they keep
        their reset value until a late launch), else its initial value."""
        if 17 <= pcr <= 22:
            return b"\xff" * bank.digest_size
        return self.initial_value(bank, pcr)

    def iter_extended(self) -> Iterator[Event]:
        return (e for e in self.events if e.is_extended)

    def replay(self) -> PCRBanks:
        """Replay every bank and return the *unverified* PCR values the log claims, per bank and PCR.

        Only PCRs that have at least one extended event appear. A bank is replayed from the events that
        carry a digest for it.
        """
        result: PCRBanks = {}
        for bank in self.banks:
            values: dict[int, bytes] = {}
            hash_ = bank.hasher
            for event in self.iter_extended():
                digest = event.digests.get(bank)
                if digest is None:
                    continue
                current = values.get(event.pcr)
                if current is None:
                    current = self.initial_value(bank, event.pcr)
                values[event.pcr] = hash_(current + digest)
            result[bank] = dict(sorted(values.items()))
        return result

    def verify(
        self, pcrs: Mapping[HashAlg, Mapping[int, bytes]], *, allow_workarounds: bool = False
    ) -> VerifiedEventLog:
        """Replay the log against trusted PCR values and return the events those values vouch for.

        Every PCR given must equal the replayed value (a PCR without events must hold its reset value);
        otherwise :class:`ReplayError` lists each (bank, PCR) with the expected and replayed value. With
        ``allow_workarounds`` a mismatching PCR may still match under a named firmware workaround
        (:mod:`secl.core.eventlog_workarounds`), which the result reports.
        """
        replayed = self.replay()
        mismatches: dict[tuple[str, int], tuple[bytes, bytes]] = {}
        used: set[str] = set()
        for bank, values in pcrs.items():
            if bank not in self.banks:
                raise ReplayError(f"the log has no {bank.bank_name} bank to check", {})
            for pcr, expected in values.items():
                got = replayed[bank].get(pcr) or self.unextended_value(bank, pcr)
                if hmac.compare_digest(got, expected):
                    continue
                fix = _matching_workaround(bank, pcr, got, expected) if allow_workarounds else None
                if fix is None:
                    mismatches[(bank.bank_name, pcr)] = (expected, got)
                else:
                    used.add(fix)
        if mismatches:
            names = ", ".join(f"{b}:{p}" for b, p in sorted(mismatches))
            raise ReplayError(f"event log does not replay to PCR {names}", mismatches)
        covered = {pcr for values in pcrs.values() for pcr in values}
        events = tuple(e for e in self.iter_extended() if e.pcr in covered)
        return VerifiedEventLog(self, events, tuple(sorted(used)))

    def digest_mismatches(self) -> tuple[DigestMismatch, ...]:
        """List events whose digest is not the hash of their data, for types where the spec requires it."""
        return self.check_event_digests()[0]

    def digest_quirks(self) -> tuple[DigestQuirk, ...]:
        """List events whose digest matched their data only under a named quirk."""
        return self.check_event_digests()[1]

    def check_event_digests(self) -> tuple[tuple[DigestMismatch, ...], tuple[DigestQuirk, ...]]:
        """Recompute the digest of every event whose digest the spec defines as the hash of its data.

        Returns the mismatches and the events that matched only under a known quirk. EV_IPL is not
        checked: GRUB measures the command without its "grub_cmd: " prefix, so its digest is not the hash
        of the logged string by design.
        """
        mismatches: list[DigestMismatch] = []
        quirks: list[DigestQuirk] = []
        for event in self.iter_extended():
            if event.type not in DIGEST_OF_DATA_TYPES:
                continue
            quirk_used: str | None = None
            for bank, logged in event.digests.items():
                candidates = _acceptable_data_digests(event, bank)
                matched: str | bool | None = next(
                    (q for d, q in candidates if hmac.compare_digest(logged, d)), False
                )
                if matched is False:
                    mismatches.append(
                        DigestMismatch(
                            event.number, event.pcr, event.type_name, bank, logged, candidates[0][0]
                        )
                    )
                elif isinstance(matched, str):
                    quirk_used = matched
            if quirk_used is not None:
                quirks.append(DigestQuirk(event.number, event.pcr, event.type_name, quirk_used))
        return tuple(mismatches), tuple(quirks)


#: shim (the Secure Boot first-stage loader) logs its EV_EFI_VARIABLE_AUTHORITY events with one byte more
#: than it hashed (an off-by-one in its data length), so the digest is that of the data minus its last byte.
QUIRK_SHIM_AUTHORITY_EXTRA_BYTE = "shim-authority-extra-byte"


@dataclass(frozen=True, slots=True)
class VerifiedEventLog:
    """A log whose events replayed to PCR values the caller trusts (for example, from a verified quote)."""

    log: EventLog
    events: tuple[Event, ...]  # the extended events on the PCRs that were checked
    workarounds: tuple[str, ...]  # names of the firmware workarounds that were needed, if any


def _matching_workaround(bank: HashAlg, pcr: int, replayed: bytes, expected: bytes) -> str | None:
    for workaround in WORKAROUNDS:
        if workaround.affected_pcr == pcr and hmac.compare_digest(workaround.apply(bank, replayed), expected):
            return workaround.name
    return None


def _acceptable_data_digests(event: Event, bank: HashAlg) -> list[tuple[bytes, str | None]]:
    digests: list[tuple[bytes, str | None]] = [(bank.hash(event.data), None)]
    if event.type == EventType.EV_EFI_VARIABLE_BOOT:
        # EDK2 (and so nearly every UEFI firmware) hashes only the variable's value here; the spec's wording
        # allowed it until EV_EFI_VARIABLE_BOOT2 made the whole UEFI_VARIABLE_DATA the measured object.
        # Being the norm rather than a defect, it is accepted without being reported as a quirk.
        value = _variable_value(event.data)
        if value is not None:
            digests.append((bank.hash(value), None))
    elif event.type == EventType.EV_EFI_VARIABLE_AUTHORITY and event.data:
        digests.append((bank.hash(event.data[:-1]), QUIRK_SHIM_AUTHORITY_EXTRA_BYTE))
    return digests


def _variable_value(data: bytes) -> bytes | None:
    if len(data) < 32:
        return None
    name_chars, value_len = struct.unpack_from("<QQ", data, 16)
    start = 32 + 2 * name_chars
    if start + value_len > len(data):
        return None
    return data[start : start + value_len]


def parse_event_log(data: bytes) -> EventLog:
    """Parse a firmware event log in either encoding; raise :class:`EventLogError` if it is malformed.

    Parsing stops at trailing padding (all-zero or all-0xFF bytes), which logs read from a fixed-size
    memory window carry. The result is unverified: see :meth:`EventLog.verify`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EventLogError("event log must be bytes")
    data = bytes(data)
    if not data:
        raise EventLogError("event log is empty", code="eventlog-empty")
    parser = _Parser(data)
    return parser.parse()


class _Parser:
    """A single pass over the log; every size field is checked against what is left before it is used."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0
        # Where the padding would start: computed once so the per-event check is O(1).
        self.zero_end = len(data.rstrip(b"\x00"))
        self.ff_end = len(data.rstrip(b"\xff"))

    def parse(self) -> EventLog:
        try:
            first = self._read_tcg12_event(0)
        except EventLogError as exc:
            raise EventLogError(f"cannot parse first event: {exc.message}") from None
        spec_id = _parse_spec_id(first) if _is_spec_id_event(first) else None
        events = [first]
        if spec_id is None:
            while not self._at_padding():
                events.append(self._read_tcg12_event(len(events)))
            banks: tuple[HashAlg, ...] = (HashAlg.SHA1,)
            fmt: LogFormat = "tcg1.2"
        else:
            sizes = dict(spec_id.algorithms)
            fast = _FastAgileLayout(spec_id.algorithms)
            while not self._at_padding():
                event = fast.read(self.data, self.offset, len(events))
                if event is None:
                    event = self._read_agile_event(len(events), sizes)
                else:
                    self.offset += fast.size + len(event.data)
                events.append(event)
            banks = tuple(HashAlg(a) for a, _ in spec_id.algorithms if a in HashAlg._value2member_map_)
            fmt = "crypto-agile"
        padding = len(self.data) - self.offset
        return EventLog(
            fmt, spec_id, tuple(events), banks, padding, _startup_locality(events), _has_hcrtm(events)
        )

    def _at_padding(self) -> bool:
        return self.offset >= self.zero_end or self.offset >= self.ff_end

    def _need(self, size: int, number: int, what: str) -> None:
        left = len(self.data) - self.offset
        if size > left:
            raise EventLogError(
                f"event {number} at offset {self.offset}: {what} needs {size} bytes but only {left} remain",
                code="eventlog-truncated",
            )

    def _read_tcg12_event(self, number: int) -> Event:
        start = self.offset
        self._need(_TCG12_HEADER.size, number, "TCG_PCR_EVENT header")
        pcr, type_, sha1, size = _TCG12_HEADER.unpack_from(self.data, self.offset)
        self.offset += _TCG12_HEADER.size
        payload = self._read_payload(size, number)
        return Event(number, start, pcr, type_, {HashAlg.SHA1: sha1}, payload)

    def _read_agile_event(self, number: int, sizes: Mapping[int, int]) -> Event:
        start = self.offset
        self._need(_AGILE_HEADER.size, number, "TCG_PCR_EVENT2 header")
        pcr, type_, count = _AGILE_HEADER.unpack_from(self.data, self.offset)
        self.offset += _AGILE_HEADER.size
        if count > len(sizes):
            raise EventLogError(
                f"event {number} at offset {start}: {count} digests but the Spec ID event declares "
                f"{len(sizes)} banks",
                code="eventlog-bad-digest-count",
            )
        digests: dict[HashAlg, bytes] = {}
        unknown: dict[int, bytes] = {}
        for _ in range(count):
            self._need(2, number, "digest algorithm id")
            (alg_id,) = _U16.unpack_from(self.data, self.offset)
            self.offset += 2
            size = sizes.get(alg_id)
            if size is None:
                raise EventLogError(
                    f"event {number} at offset {start}: digest algorithm 0x{alg_id:04x} is not declared "
                    "in the Spec ID event",
                    code="eventlog-undeclared-algorithm",
                )
            self._need(size, number, "digest")
            digest = self.data[self.offset : self.offset + size]
            self.offset += size
            if alg_id in HashAlg._value2member_map_:
                digests[HashAlg(alg_id)] = digest
            else:
                unknown[alg_id] = digest
        self._need(4, number, "event size")
        (size,) = _U32.unpack_from(self.data, self.offset)
        self.offset += 4
        payload = self._read_payload(size, number)
        return Event(number, start, pcr, type_, digests, payload, unknown)

    def _read_payload(self, size: int, number: int) -> bytes:
        if size > _MAX_EVENT_DATA:
            raise EventLogError(
                f"event {number} at offset {self.offset - 4}: event size {size} is implausibly large",
                code="eventlog-bad-event-size",
            )
        self._need(size, number, "event data")
        payload = self.data[self.offset : self.offset + size]
        self.offset += size
        return payload


class _FastAgileLayout:
    """One struct for the usual record: every declared bank's digest, in the declared order.

    Almost every real event has that shape, so one ``unpack_from`` replaces a dozen small reads; any
    other shape (or anything out of bounds) returns None and the careful reader handles it.
    """

    def __init__(self, algorithms: tuple[tuple[int, int], ...]) -> None:
        layout = "<III" + "".join(f"H{size}s" for _, size in algorithms) + "I"
        self.struct = struct.Struct(layout)
        self.size = self.struct.size
        self.algorithm_ids = tuple(alg for alg, _ in algorithms)
        known = tuple(_KNOWN_BANKS.get(alg) for alg, _ in algorithms)
        self.all_known = None not in known
        # Used only when all_known: then this is one bank per algorithm, in the log's order.
        self.banks: tuple[HashAlg, ...] = tuple(b for b in known if b is not None)

    def read(self, data: bytes, offset: int, number: int) -> Event | None:
        if not self.all_known or offset + self.size > len(data):
            return None
        fields = self.struct.unpack_from(data, offset)
        pcr, type_, count = fields[0], fields[1], fields[2]
        if count != len(self.banks) or fields[3:-1:2] != self.algorithm_ids:
            return None
        size = fields[-1]
        start = offset + self.size
        if size > _MAX_EVENT_DATA or start + size > len(data):
            return None
        digests = dict(zip(self.banks, fields[4:-1:2], strict=True))
        return Event(number, offset, pcr, type_, digests, data[start : start + size])


_KNOWN_BANKS = {alg.value: alg for alg in HashAlg}


def _startup_locality(events: list[Event]) -> int | None:
    for event in events:
        if (
            event.type == EventType.EV_NO_ACTION
            and event.pcr == 0
            and event.data.startswith(_STARTUP_LOCALITY_SIGNATURE)
            and len(event.data) > len(_STARTUP_LOCALITY_SIGNATURE)
        ):
            return event.data[len(_STARTUP_LOCALITY_SIGNATURE)]
    return None


def _has_hcrtm(events: list[Event]) -> bool:
    return any(e.type == EventType.EV_EFI_HCRTM_EVENT for e in events)


def _is_spec_id_event(event: Event) -> bool:
    return (
        event.pcr == 0 and event.type == EventType.EV_NO_ACTION and event.data.startswith(_SPEC_ID_SIGNATURE)
    )


def _parse_spec_id(event: Event) -> SpecIdEvent:
    data = event.data
    fixed = len(_SPEC_ID_SIGNATURE) + 12
    if len(data) < fixed:
        raise EventLogError("Spec ID event is truncated", code="eventlog-bad-spec-id")
    platform_class, minor, major, errata, uintn, count = struct.unpack_from("<IBBBBI", data, 16)
    if count == 0 or count > _MAX_ALGORITHMS:
        raise EventLogError(f"Spec ID event declares {count} algorithms", code="eventlog-bad-spec-id")
    offset = fixed
    if offset + 4 * count + 1 > len(data):
        raise EventLogError("Spec ID event is truncated in its algorithm list", code="eventlog-bad-spec-id")
    algorithms = []
    for _ in range(count):
        alg_id, size = struct.unpack_from("<HH", data, offset)
        offset += 4
        if alg_id in HashAlg._value2member_map_ and HashAlg(alg_id).digest_size != size:
            raise EventLogError(
                f"Spec ID event gives {HashAlg(alg_id).bank_name} a digest size of {size}",
                code="eventlog-bad-spec-id",
            )
        if size == 0 or size > 128:
            raise EventLogError(f"Spec ID event gives algorithm 0x{alg_id:04x} digest size {size}")
        algorithms.append((alg_id, size))
    if len({a for a, _ in algorithms}) != len(algorithms):
        raise EventLogError("Spec ID event declares an algorithm twice", code="eventlog-bad-spec-id")
    vendor_size = data[offset]
    offset += 1
    if offset + vendor_size > len(data):
        raise EventLogError("Spec ID event vendor info is truncated", code="eventlog-bad-spec-id")
    return SpecIdEvent(
        platform_class,
        (major, minor, errata),
        uintn,
        tuple(algorithms),
        data[offset : offset + vendor_size],
    )


def pcr_banks_to_json(banks: Mapping[HashAlg, Mapping[int, bytes]]) -> dict[str, dict[str, str]]:
    """``{"sha256": {"0": "<hex>", ...}, ...}``: the JSON shape the CLI prints and reads back."""
    return {
        bank.bank_name: {str(pcr): value.hex() for pcr, value in values.items()}
        for bank, values in banks.items()
    }


def pcr_banks_from_json(obj: object) -> PCRBanks:
    """Read the JSON shape of :func:`pcr_banks_to_json`; raise :class:`EvidenceError` if it is not that."""
    if not isinstance(obj, dict):
        raise EvidenceError("PCR values must be a JSON object of banks", code="pcr-values-malformed")
    result: PCRBanks = {}
    for bank_name, values in obj.items():
        bank = HashAlg.from_name(str(bank_name))
        if not isinstance(values, dict):
            raise EvidenceError(
                f"PCR bank {bank_name!r} must map PCR numbers to hex", code="pcr-values-malformed"
            )
        try:
            # A verifier reads 24 PCRs x 2-3 banks per report: decode the bank at once, then check it.
            parsed = {int(pcr): bytes.fromhex(value) for pcr, value in values.items()}
        except (TypeError, ValueError):
            parsed = None
        if (
            parsed is None
            or len(parsed) != len(values)  # "1" and "01" name one PCR twice
            or not all(0 <= index < 32 for index in parsed)
            or any(len(digest) != bank.digest_size for digest in parsed.values())
        ):
            _explain_bad_bank(bank_name, values, bank.digest_size)
        result[bank] = parsed
    return result


def _explain_bad_bank(bank_name: object, values: dict[Any, Any], size: int) -> NoReturn:
    """Raise the error naming the first PCR of the bank that is not a PCR number with a digest."""
    seen: set[int] = set()
    for pcr, value in values.items():
        try:
            index = int(pcr)
        except (TypeError, ValueError):
            raise EvidenceError(
                f"PCR {bank_name}:{pcr!r} is not a PCR number", code="pcr-values-malformed"
            ) from None
        try:
            digest = bytes.fromhex(value)
        except (TypeError, ValueError):
            problem = hex_problem(value) if isinstance(value, str) else "is not a hex string"
            raise EvidenceError(
                f"PCR {bank_name}:{pcr} value {value!r} {problem}", code="pcr-values-malformed"
            ) from None
        if not 0 <= index < 32 or len(digest) != size:
            raise EvidenceError(
                f"PCR {bank_name}:{pcr} has the wrong index or digest size", code="pcr-values-malformed"
            )
        if index in seen:
            raise EvidenceError(f"PCR {bank_name}:{pcr} is given twice", code="pcr-values-malformed")
        seen.add(index)
    raise AssertionError("unreachable: the bank was refused for a reason")
