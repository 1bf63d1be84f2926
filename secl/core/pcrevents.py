"""PCR references and the JSON event entries SecL puts in flavors and host manifests.

SecL (v4/v5) writes one event as ``{"type_id": "0x80000001", "type_name": "EV_EFI_VARIABLE_DRIVER_CONFIG",
"tags": ["db"], "measurement": "<hex digest>"}`` and names a register as ``{"index": 7, "bank": "SHA256"}``.
Flavors (expected events) and host manifests (reported events) share this shape, so the trust rules compare
them directly. Event identity follows SecL: two events are the same when their type id and measurement are
equal; type name and tags only describe the event, they are what an operator reads in a fault.

``replay_events`` computes the value a list of manifest events extends a PCR to, with SecL's conventions:
start from zeros, except that PCR 0 starts at ``00…03`` when its first event is the ``EV_NO_ACTION``
"StartupLocality3" marker (the TPM was started from locality 3, e.g. by Boot Guard), and ``EV_NO_ACTION``
events are never extended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

from secl.core.errors import EvidenceError
from secl.core.eventtypes import event_type_name
from secl.core.hashalg import HashAlg
from secl.core.hextext import hex_problem

__all__ = [
    "STARTUP_LOCALITY_TAG",
    "PcrRef",
    "SeclJSONError",
    "TpmEvent",
    "freeze",
    "replay_events",
    "thaw",
]

STARTUP_LOCALITY_TAG = "StartupLocality3"
_EV_NO_ACTION = "EV_NO_ACTION"
_BANKS = ("SHA1", "SHA256", "SHA384", "SHA512")


class SeclJSONError(EvidenceError):
    """A SecL JSON document (flavor, host manifest, event entry) has the wrong shape."""

    code = "secl-json-invalid"


_SCALARS = (str, int, float, bool, type(None))


def freeze(value: Any) -> Any:
    """Return a deep read-only copy of a JSON value (dicts become mapping proxies, lists tuples)."""
    if type(value) in _SCALARS:  # exact-type checks first: isinstance against an ABC is slow
        return value
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Inverse of :func:`freeze`: plain dicts and lists, ready for json.dumps."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


EMPTY: Mapping[str, Any] = MappingProxyType({})


def normalize_bank(bank: object, *, where: str) -> str:
    """Return a SecL bank name (``SHA256``); accept ``sha256``/``SHA-256`` spellings, reject others."""
    if not isinstance(bank, str):
        raise SeclJSONError(f"{where}: bank must be a string, got {bank!r}")
    name = bank.strip().upper().replace("-", "")
    if name not in _BANKS:
        raise SeclJSONError(f"{where}: unsupported PCR bank {bank!r}")
    return name


# The SecL bank names (what normalize_bank returns) and their algorithms; read-only.
_BANK_ALGS: Mapping[str, HashAlg] = MappingProxyType({name: HashAlg.from_name(name) for name in _BANKS})


def hash_alg_for_bank(bank: str) -> HashAlg:
    found = _BANK_ALGS.get(bank)  # replays look the bank up per PCR, report after report
    return found if found is not None else HashAlg.from_name(bank)


@dataclass(frozen=True, order=True)
class PcrRef:
    """One register of one bank, e.g. ``PcrRef(7, "SHA256")``."""

    index: int
    bank: str

    @classmethod
    def from_json(cls, obj: object, *, where: str = "pcr") -> PcrRef:
        if not isinstance(obj, Mapping):
            raise SeclJSONError(f"{where}: expected an object with index and bank, got {obj!r}")
        index = obj.get("index")
        if isinstance(index, str) and index.startswith("pcr_"):
            index = index[4:]
        try:
            index = int(index)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise SeclJSONError(f"{where}: PCR index {obj.get('index')!r} is not an integer") from None
        if not 0 <= index <= 23:
            raise SeclJSONError(f"{where}: PCR index {index} is outside 0..23")
        return cls(index, normalize_bank(obj.get("bank"), where=where))

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "bank": self.bank}

    def __str__(self) -> str:
        return f"PCR {self.index} ({self.bank})"


@dataclass(frozen=True)
class TpmEvent:
    """One event entry: what was measured (type, tags) and its digest in one bank."""

    type_id: str
    type_name: str
    tags: tuple[str, ...]
    measurement: str
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)
    # "tags" absent and "tags": [] differ on the wire; remember which so a flavor round-trips exactly.
    tags_present: bool = field(default=True, compare=False)

    @classmethod
    def from_json(cls, obj: object, *, where: str = "event") -> TpmEvent:
        if not isinstance(obj, Mapping):
            raise SeclJSONError(f"{where}: expected an event object, got {obj!r}")
        measurement = obj.get("measurement")
        if not isinstance(measurement, str) or not _is_hex(measurement):
            problem = hex_problem(measurement) if isinstance(measurement, str) else "is not a string"
            raise SeclJSONError(f"{where}: measurement {measurement!r} {problem or 'is not a hex digest'}")
        type_id = obj.get("type_id", "")
        type_name = obj.get("type_name", "")
        tags = obj.get("tags") or ()
        if not isinstance(type_id, str) or not isinstance(type_name, str):
            raise SeclJSONError(f"{where}: type_id and type_name must be strings")
        if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
            raise SeclJSONError(f"{where}: tags must be a list of strings")
        known = {"type_id", "type_name", "tags", "measurement"}
        extra = freeze({k: v for k, v in obj.items() if k not in known})
        return cls(type_id, type_name, tuple(tags), measurement, extra, "tags" in obj)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type_id": self.type_id, "type_name": self.type_name}
        if self.tags or self.tags_present:
            out["tags"] = list(self.tags)
        out["measurement"] = self.measurement
        if self.extra:
            out.update(thaw(self.extra))
        return out

    # The derived values below are computed once per event object (the event is immutable): the events of
    # a flavor and of a memoized host manifest are compared and replayed report after report. Computing one
    # twice from two threads gives the same value, so threads may share the events.

    @cached_property
    def key(self) -> tuple[str, str]:
        """SecL's event identity: (type id, measurement), compared case-insensitively as hex."""
        return (_norm_type_id(self.type_id), self.measurement.lower())

    @cached_property
    def is_no_action(self) -> bool:
        return self.type_name == _EV_NO_ACTION or _norm_type_id(self.type_id) == "0x3"

    @cached_property
    def digest(self) -> bytes:
        """The measurement as bytes (what a replay extends)."""
        return bytes.fromhex(self.measurement)

    def describe(self) -> str:
        """A one-line description for faults: type name (id), tags, digest."""
        name = self.type_name or _name_for_type_id(self.type_id)
        tags = f" tags={list(self.tags)}" if self.tags else ""
        return f"{name} ({self.type_id}){tags} measurement={self.measurement}"


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _norm_type_id(type_id: str) -> str:
    try:
        return hex(int(type_id, 16))
    except ValueError:
        return type_id.strip().lower()


def _name_for_type_id(type_id: str) -> str:
    try:
        return event_type_name(int(type_id, 16))
    except ValueError:
        return "unknown event type"


def replay_events(bank: str, index: int, events: Sequence[TpmEvent]) -> bytes:
    """Return the PCR value ``events`` extend register ``index`` of ``bank`` to (SecL's replay rules)."""
    alg = hash_alg_for_bank(bank)
    size, extend = alg.digest_size, alg.hasher
    value = bytearray(size)
    if index == 0 and events and events[0].is_no_action and STARTUP_LOCALITY_TAG in events[0].tags:
        value[-1] = 3
    current = bytes(value)
    for position, event in enumerate(events):
        if event.is_no_action:
            continue
        digest = event.digest
        if len(digest) != size:
            raise SeclJSONError(
                f"PCR {index} ({bank}) event {position}: {len(digest)}-byte measurement in a {size}-byte bank"
            )
        current = extend(current + digest)
    return current
