"""SecL v4/v5 flavors: the JSON document that says what a trusted host measures, as a frozen model.

A flavor is ``{"meta": {...}, "bios": {...}, "hardware": {...}, "pcrs": [...], "external": {...},
"software": {...}}``; which sections appear depends on ``meta.description.flavor_part`` (PLATFORM, OS,
HOST_UNIQUE, ASSET_TAG, SOFTWARE). A signed flavor is ``{"flavor": {...}, "signature": "<base64>"}``.

The model types what the trust rules read (``pcrs``, ``software``, the flavor part and label) and keeps
everything else as read-only JSON: ``meta.description`` is an open map in SecL v5 (its keys vary by part and
version), and unknown members of every object are kept in ``extra``. ``Flavor.to_json()`` therefore gives
back the document that was parsed, member for member, which matters because signatures cover it.

Parsing is strict about the JSON itself (duplicate member names, NaN/Infinity are errors, since they make
the signed bytes ambiguous) and about the members the rules use; it is lenient about the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from secl.core.errors import EvidenceError
from secl.core.pcrevents import EMPTY, PcrRef, SeclJSONError, TpmEvent, freeze, thaw

__all__ = [
    "FLAVOR_PARTS",
    "EventLogEquals",
    "Flavor",
    "FlavorError",
    "FlavorMeta",
    "FlavorPcr",
    "SignedFlavor",
    "Software",
    "SoftwareMeasurement",
    "load_json",
    "parse_flavor",
    "parse_signed_flavor",
    "parse_signed_flavors",
]

FLAVOR_PARTS = ("PLATFORM", "OS", "HOST_UNIQUE", "ASSET_TAG", "SOFTWARE")


class FlavorError(SeclJSONError):
    """A flavor or signed-flavor document is malformed."""

    code = "flavor-invalid"


def load_json(data: bytes | str, *, what: str, error: type[EvidenceError] = SeclJSONError) -> Any:
    """Decode JSON, rejecting duplicate member names and NaN/Infinity (both make signed bytes ambiguous)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise error(f"{what}: duplicate member {key!r}")
            out[key] = value
        return out

    def no_constants(name: str) -> Any:
        raise error(f"{what}: {name} is not JSON")

    try:
        return json.loads(data, object_pairs_hook=pairs, parse_constant=no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, EvidenceError):
            raise
        raise error(f"{what}: not valid JSON: {exc}") from None


def _obj(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FlavorError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _extra(obj: Mapping[str, Any], known: tuple[str, ...]) -> Mapping[str, Any]:
    return freeze({k: v for k, v in obj.items() if k not in known})


def _events(value: object, where: str) -> tuple[TpmEvent, ...]:
    if not isinstance(value, list | tuple):
        raise FlavorError(f"{where}: expected a list of events")
    return tuple(TpmEvent.from_json(e, where=f"{where}[{i}]") for i, e in enumerate(value))


@dataclass(frozen=True)
class EventLogEquals:
    """``eventlog_equals``: the PCR's log must hold exactly these events, after dropping excluded tags."""

    events: tuple[TpmEvent, ...]
    exclude_tags: tuple[str, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)

    _KNOWN = ("events", "exclude_tags")

    @classmethod
    def from_json(cls, obj: object, where: str) -> EventLogEquals:
        o = _obj(obj, where)
        tags = o.get("exclude_tags")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            raise FlavorError(f"{where}.exclude_tags: expected a list of strings")
        events = _events(o.get("events", []), f"{where}.events")
        return cls(events, None if tags is None else tuple(tags), _extra(o, cls._KNOWN))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"events": [e.to_json() for e in self.events]}
        if self.exclude_tags is not None:
            out["exclude_tags"] = list(self.exclude_tags)
        out.update(thaw(self.extra))
        return out


@dataclass(frozen=True)
class FlavorPcr:
    """One ``pcrs[]`` entry: the expected value of one register and how its event log is checked."""

    pcr: PcrRef
    measurement: str
    pcr_matches: bool | None = None
    eventlog_equals: EventLogEquals | None = None
    eventlog_includes: tuple[TpmEvent, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)

    _KNOWN = ("pcr", "measurement", "pcr_matches", "eventlog_equals", "eventlog_includes")

    @classmethod
    def from_json(cls, obj: object, where: str) -> FlavorPcr:
        o = _obj(obj, where)
        pcr = PcrRef.from_json(o.get("pcr"), where=f"{where}.pcr")
        measurement = o.get("measurement", "")
        if not isinstance(measurement, str):
            raise FlavorError(f"{where}.measurement: expected a hex string")
        matches = o.get("pcr_matches")
        if matches is not None and not isinstance(matches, bool):
            raise FlavorError(f"{where}.pcr_matches: expected true or false, got {matches!r}")
        equals = o.get("eventlog_equals")
        includes = o.get("eventlog_includes")
        return cls(
            pcr,
            measurement,
            matches,
            None if equals is None else EventLogEquals.from_json(equals, f"{where}.eventlog_equals"),
            None if includes is None else _events(includes, f"{where}.eventlog_includes"),
            _extra(o, cls._KNOWN),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pcr": self.pcr.to_json(), "measurement": self.measurement}
        if self.pcr_matches is not None:
            out["pcr_matches"] = self.pcr_matches
        if self.eventlog_equals is not None:
            out["eventlog_equals"] = self.eventlog_equals.to_json()
        if self.eventlog_includes is not None:
            out["eventlog_includes"] = [e.to_json() for e in self.eventlog_includes]
        out.update(thaw(self.extra))
        return out


@dataclass(frozen=True)
class FlavorMeta:
    """``meta``: id, the open ``description`` map (flavor_part, label, source, ...) and vendor."""

    id: str
    description: Mapping[str, Any]
    vendor: str | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)

    _KNOWN = ("id", "description", "vendor")

    @classmethod
    def from_json(cls, obj: object, where: str = "meta") -> FlavorMeta:
        o = _obj(obj, where)
        flavor_id = o.get("id", "")
        vendor = o.get("vendor")
        if not isinstance(flavor_id, str):
            raise FlavorError(f"{where}.id: expected a UUID string")
        if vendor is not None and not isinstance(vendor, str):
            raise FlavorError(f"{where}.vendor: expected a string")
        description = _obj(o.get("description", {}), f"{where}.description")
        part = description.get("flavor_part")
        if part not in FLAVOR_PARTS:
            raise FlavorError(f"{where}.description.flavor_part: {part!r} is not one of {FLAVOR_PARTS}")
        # Keep schema/realm (and anything newer) in their original position relative to id.
        return cls(flavor_id, freeze(description), vendor, freeze(dict(o)))

    def to_json(self) -> dict[str, Any]:
        out = {k: thaw(v) for k, v in self.extra.items()}
        out["id"] = self.id
        out["description"] = thaw(self.description)
        if self.vendor is not None:
            out["vendor"] = self.vendor
        elif "vendor" in out:
            del out["vendor"]
        return out

    @property
    def flavor_part(self) -> str:
        return str(self.description["flavor_part"])

    @property
    def label(self) -> str:
        return str(self.description.get("label", ""))


@dataclass(frozen=True)
class SoftwareMeasurement:
    """One ``software.measurements`` entry: a File, Dir or Symlink and its SHA-384 (hex).

    SecL v3+ writes ``{"type", "value", "Path", ...}``; v1 flavors wrote ``{"Value", "Path", ...}`` with no
    type. Both parse; ``value_key`` remembers the spelling so the flavor round-trips.
    """

    type: str | None
    value: str
    path: str
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)
    value_key: str = field(default="value", compare=False)

    @classmethod
    def from_json(cls, obj: object, where: str) -> SoftwareMeasurement:
        o = _obj(obj, where)
        value_key = "value" if "value" in o or "Value" not in o else "Value"
        kind, value, path = o.get("type"), o.get(value_key), o.get("Path")
        if not isinstance(value, str) or not isinstance(path, str) or not isinstance(kind, str | None):
            raise FlavorError(f"{where}: value and Path must be strings")
        return cls(kind, value, path, _extra(o, ("type", value_key, "Path")), value_key)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.type is None else {"type": self.type}
        out.update({self.value_key: self.value, "Path": self.path, **thaw(self.extra)})
        return out


@dataclass(frozen=True)
class Software:
    """``software``: the measurements a SOFTWARE flavor expects, keyed by SecL's measurement names."""

    measurements: Mapping[str, SoftwareMeasurement] | None
    cumulative_hash: str | None
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)

    @classmethod
    def from_json(cls, obj: object, where: str = "software") -> Software:
        o = _obj(obj, where)
        raw = o.get("measurements")
        measurements = None
        if raw is not None:
            items = _obj(raw, f"{where}.measurements").items()
            measurements = freeze(
                {k: SoftwareMeasurement.from_json(v, f"{where}.measurements.{k}") for k, v in items}
            )
        cumulative = o.get("cumulative_hash")
        if cumulative is not None and not isinstance(cumulative, str):
            raise FlavorError(f"{where}.cumulative_hash: expected a hex string")
        return cls(measurements, cumulative, _extra(o, ("measurements", "cumulative_hash")))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.measurements is not None:
            out["measurements"] = {k: m.to_json() for k, m in self.measurements.items()}
        if self.cumulative_hash is not None:
            out["cumulative_hash"] = self.cumulative_hash
        out.update(thaw(self.extra))
        return out


@dataclass(frozen=True)
class Flavor:
    """A parsed flavor. ``source`` is the document as it was read (member order included), if it was read."""

    meta: FlavorMeta
    bios: Mapping[str, Any] | None = None
    hardware: Mapping[str, Any] | None = None
    pcrs: tuple[FlavorPcr, ...] | None = None
    external: Mapping[str, Any] | None = None
    software: Software | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)
    source: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    # Data derived from this flavor alone, computed once per flavor object: the trust rules built from it
    # (secl.core.trustreport), which a verifier that memoizes flavors applies report after report. Entries
    # are immutable and computing one twice gives the same value, so threads may share it. Not the value.
    derived: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    _KNOWN = ("meta", "bios", "hardware", "pcrs", "external", "software")

    @property
    def id(self) -> str:
        return self.meta.id

    @property
    def flavor_part(self) -> str:
        return self.meta.flavor_part

    @property
    def label(self) -> str:
        return self.meta.label

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"meta": self.meta.to_json()}
        for name in ("bios", "hardware"):
            value = getattr(self, name)
            if value is not None:
                out[name] = thaw(value)
        if self.pcrs is not None:
            out["pcrs"] = [p.to_json() for p in self.pcrs]
        if self.external is not None:
            out["external"] = thaw(self.external)
        if self.software is not None:
            out["software"] = self.software.to_json()
        out.update(thaw(self.extra))
        return out


def parse_flavor(doc: Mapping[str, Any] | bytes | str) -> Flavor:
    """Parse a flavor from JSON text or an already-decoded object."""
    try:
        return _parse_flavor(doc)
    except FlavorError:
        raise
    except SeclJSONError as exc:  # A PCR reference or event entry: report it as a flavor error.
        raise FlavorError(exc.message) from None


def _parse_flavor(doc: Mapping[str, Any] | bytes | str) -> Flavor:
    obj = _obj(
        load_json(doc, what="flavor", error=FlavorError) if isinstance(doc, bytes | str) else doc, "flavor"
    )
    if "meta" not in obj:
        raise FlavorError("flavor: the meta section is missing")
    pcrs = obj.get("pcrs")
    if pcrs is not None and not isinstance(pcrs, list | tuple):
        raise FlavorError("flavor.pcrs: expected a list")
    sections = {}
    for name in ("bios", "hardware", "external"):
        if obj.get(name) is not None:
            sections[name] = freeze(_obj(obj[name], f"flavor.{name}"))
    return Flavor(
        meta=FlavorMeta.from_json(obj["meta"]),
        pcrs=None
        if pcrs is None
        else tuple(FlavorPcr.from_json(p, f"flavor.pcrs[{i}]") for i, p in enumerate(pcrs)),
        software=None if obj.get("software") is None else Software.from_json(obj["software"]),
        extra=_extra(obj, Flavor._KNOWN),
        source=freeze(obj),
        **sections,
    )


@dataclass(frozen=True)
class SignedFlavor:
    """``{"flavor": ..., "signature": "<base64>"}`` plus any envelope members (e.g. our signature scheme)."""

    flavor: Flavor
    signature: str
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)
    # As Flavor.derived: data computed once per signed-flavor object (the memo key of its signature check).
    derived: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"flavor": self.flavor.to_json(), "signature": self.signature, **thaw(self.extra)}


def parse_signed_flavor(doc: Mapping[str, Any] | bytes | str) -> SignedFlavor:
    """Parse one signed-flavor envelope. A missing signature parses as ``""`` (FlavorTrusted faults it)."""
    if isinstance(doc, bytes | str):
        doc = load_json(doc, what="signed flavor", error=FlavorError)
    obj = _obj(doc, "signed flavor")
    if "flavor" not in obj:
        raise FlavorError("signed flavor: the flavor member is missing")
    signature = obj.get("signature", "")
    if not isinstance(signature, str):
        raise FlavorError("signed flavor: signature must be a base64 string")
    return SignedFlavor(
        parse_flavor(_obj(obj["flavor"], "flavor")), signature, _extra(obj, ("flavor", "signature"))
    )


def parse_signed_flavors(doc: bytes | str | list[Any]) -> tuple[SignedFlavor, ...]:
    """Parse a JSON array of signed flavors (SecL's export), or ``{"signed_flavors": [...]}``."""
    # Typed Any: a decoded document may be any JSON value until the checks below narrow it.
    obj: Any = (
        load_json(doc, what="signed flavors", error=FlavorError) if isinstance(doc, bytes | str) else doc
    )
    if isinstance(obj, Mapping) and "signed_flavors" in obj:
        obj = obj["signed_flavors"]
    if not isinstance(obj, list | tuple):
        raise FlavorError("signed flavors: expected a JSON array")
    out = []
    for i, item in enumerate(obj):
        try:
            out.append(parse_signed_flavor(item))
        except FlavorError as exc:
            raise FlavorError(f"signed flavor [{i}]: {exc.message}") from None
    return tuple(out)
