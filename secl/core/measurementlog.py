"""SecL measurement logs: the ``lib:wml:measurements:1.0`` Measurement XML a host reports, and the digests.

A Measurement mirrors the manifest it came from: one ``File``/``Dir``/``Symlink`` element per measured
thing, in measurement order, each holding its hex digest, then the ``CumulativeHash``::

    <?xml version="1.0" encoding="UTF-8" standalone="yes"?><Measurement xmlns="lib:wml:measurements:1.0"
    Label="app" Uuid="..." DigestAlg="SHA384"><Dir Exclude="" Include=".*" Path="/opt/app/bin">…</Dir>
    <File Path="/opt/app/bin/app">…</File><CumulativeHash>…</CumulativeHash></Measurement>

(one line, no whitespace between elements: exactly what SecL's tools write). The digests, with ``H`` the
manifest's DigestAlg (SHA-384 or SHA-256):

- file: ``H(content)``;
- directory: ``H(name₁ "\\n" name₂ "\\n" … nameₙ "\\n")`` over the selected names sorted as bytes (SecL pipes
  ``find | grep | LANG=C sort`` into the hash, so every name ends with a newline; no names: ``H("")``);
- symbolic link: ``H(path ‖ target)``, the link's path in the root and its target as stored, no separator;
- cumulative: ``c₀ = 0…0`` (the digest size), ``cᵢ = H(cᵢ₋₁ ‖ digestᵢ)`` over the entries in order.

The directory rule is checked against SecL's own measurements in the corpus, whose directory digests are
reproduced from the listed file names. A name holding a newline would make two listings hash alike, so
it is refused rather than measured ambiguously.

Parsing (:func:`parse_measurement_xml`) returns the host's *unverified* claims: the verifier's rules
replay the entries to the CumulativeHash, compare that with a flavor, and tie it to PCR 15.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from secl.core.appmanifest import DigestAlg, EntryKind
from secl.core.errors import EvidenceError
from secl.core.hashalg import HashAlg
from secl.core.hextext import hex_problem

__all__ = [
    "MAX_MEASUREMENT_BYTES",
    "MEASUREMENTS_NS",
    "Measured",
    "MeasurementLog",
    "MeasurementLogError",
    "cumulative_hash",
    "directory_digest",
    "parse_measurement_xml",
    "render_measurement_xml",
    "symlink_digest",
]

MEASUREMENTS_NS = "lib:wml:measurements:1.0"
MAX_MEASUREMENT_BYTES = 16 * 1024 * 1024
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
# XML 1.0 characters; anything else (C0 controls, lone surrogates from undecodable file names) cannot be
# written into a document at all.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NO_ATTRIBUTES: Mapping[str, str] = MappingProxyType({})
_ATTRIBUTE_ESCAPES = {'"': "&quot;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}


class MeasurementLogError(EvidenceError):
    """A Measurement XML is malformed, or a measurement cannot be expressed in one."""

    code = "measurement-xml-invalid"


def cumulative_hash(alg: HashAlg, digests: Iterable[bytes]) -> bytes:
    """SecL's CumulativeHash: a chain from zeros over the entries' digests, in order."""
    hasher = alg.hasher
    value = bytes(alg.digest_size)
    for digest in digests:
        value = hasher(value + digest)
    return value


def directory_digest(alg: HashAlg, names: Iterable[bytes]) -> bytes:
    """The digest of a directory listing: the selected names, sorted as bytes, each ending in a newline."""
    ordered = sorted(names)
    for name in ordered:
        if b"\n" in name or not name:
            raise MeasurementLogError(
                f"directory entry name {name!r} is empty or holds a newline: SecL's listing would be ambiguous",
                code="name-has-newline",
            )
    hasher = alg.new()
    for name in ordered:
        hasher.update(name + b"\n")
    return hasher.finalize()


def symlink_digest(alg: HashAlg, path: bytes, target: bytes) -> bytes:
    """The digest of a symbolic link: its path in the root followed by its target as stored."""
    return alg.hash(path + target)


@dataclass(frozen=True)
class Measured:
    """One measured entry: kind, path inside the root, hex digest; ``include``/``exclude`` for a Dir.
    ``extra`` keeps any other attribute a producer wrote, so a log read back compares completely."""

    kind: EntryKind
    path: str
    digest: str
    include: str | None = None
    exclude: str | None = None
    extra: Mapping[str, str] = field(default_factory=lambda: _NO_ATTRIBUTES, compare=False)

    def as_flavor_measurement(self) -> dict[str, str]:
        """This entry as a SecL SOFTWARE flavor measurement: ``{"type", "value", "Path", ...}``."""
        out = {"type": self.kind.flavor_type, "value": self.digest, "Path": self.path}
        if self.include is not None:
            out["Include"] = self.include
        if self.exclude is not None:
            out["Exclude"] = self.exclude
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class MeasurementLog:
    """One Measurement document. Parsed from a host, its contents are unverified claims."""

    label: str
    uuid: str
    digest_alg: str  # as written ("SHA384"); DigestEquals compares the spelling, as SecL does
    entries: tuple[Measured, ...]
    cumulative_hash: str  # lower-case hex

    @property
    def hash_alg(self) -> HashAlg:
        return DigestAlg.parse(self.digest_alg, error=MeasurementLogError).hash_alg

    @property
    def event_tag(self) -> str:
        """The tag of the PCR 15 event that carries this measurement: ``<Label>-<Uuid>``."""
        return f"{self.label}-{self.uuid}"

    def replay(self) -> str:
        """The CumulativeHash the entries chain to (hex); equal to ``cumulative_hash`` when consistent."""
        digests = (bytes.fromhex(entry.digest) for entry in self.entries)
        return cumulative_hash(self.hash_alg, digests).hex()


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _digest_text(element: ET.Element, alg: HashAlg, where: str) -> str:
    text = "".join((element.text or "").split()).lower()
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        raise MeasurementLogError(f"{where}: digest {text[:120]!r} {hex_problem(text)}") from None
    if len(digest) != alg.digest_size:
        raise MeasurementLogError(f"{where}: {len(digest)}-byte digest, {alg.name} needs {alg.digest_size}")
    return text


def parse_measurement_xml(data: str | bytes) -> MeasurementLog:
    """Parse one Measurement XML; raise :class:`MeasurementLogError` for a malformed or hostile document."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_MEASUREMENT_BYTES:
        raise MeasurementLogError(f"measurement XML is {len(raw)} bytes, more than {MAX_MEASUREMENT_BYTES}")
    try:
        root = SafeET.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise MeasurementLogError(
            f"measurement XML refused: {type(exc).__name__} (DTDs and entities are not allowed)",
            code="measurement-xml-forbidden",
        ) from None
    except ET.ParseError as exc:
        raise MeasurementLogError(f"measurement XML is not well-formed: {exc}") from None
    ns, local = _local(root.tag)
    if local != "Measurement" or ns not in ("", MEASUREMENTS_NS):
        raise MeasurementLogError(f"root element is {root.tag!r}, not a {MEASUREMENTS_NS} Measurement")
    digest_alg = root.get("DigestAlg") or ""
    alg = DigestAlg.parse(digest_alg, error=MeasurementLogError).hash_alg
    entries: list[Measured] = []
    cumulative: str | None = None
    for position, child in enumerate(root, start=1):
        child_ns, name = _local(child.tag)
        where = f"entry {position} <{name}>"
        if child_ns not in ("", MEASUREMENTS_NS):
            raise MeasurementLogError(f"{where}: element in unknown namespace {child_ns!r}")
        if name == "CumulativeHash":
            if cumulative is not None:
                raise MeasurementLogError("more than one CumulativeHash")
            cumulative = _digest_text(child, alg, where)
            continue
        if cumulative is not None:
            raise MeasurementLogError(f"{where}: entry after the CumulativeHash")
        try:
            kind = EntryKind(name)
        except ValueError:
            raise MeasurementLogError(
                f"{where}: unknown element (File, Dir, Symlink or CumulativeHash)"
            ) from None
        attributes = dict(child.attrib)
        if any(name.startswith("{") for name in attributes):
            raise MeasurementLogError(f"{where}: namespaced attributes are not part of a Measurement")
        path = attributes.pop("Path", "")
        if not path:
            raise MeasurementLogError(f"{where}: Path is missing")
        include = attributes.pop("Include", None) if kind is EntryKind.DIR else None
        exclude = attributes.pop("Exclude", None) if kind is EntryKind.DIR else None
        digest = _digest_text(child, alg, where)
        entries.append(Measured(kind, path, digest, include, exclude, MappingProxyType(attributes)))
    if cumulative is None:
        raise MeasurementLogError("the CumulativeHash is missing")
    return MeasurementLog(
        root.get("Label") or "", root.get("Uuid") or "", digest_alg, tuple(entries), cumulative
    )


def _attribute(name: str, value: str) -> str:
    if _NOT_XML.search(value):
        raise MeasurementLogError(
            f"{name} {value!r} holds characters XML cannot carry", code="measurement-path-unrepresentable"
        )
    return f' {name}="{escape(value, _ATTRIBUTE_ESCAPES)}"'


def render_measurement_xml(log: MeasurementLog) -> str:
    """Write ``log`` in SecL's exact shape (one line, SecL's attribute order, lower-case hex)."""
    parts = [
        _XML_DECLARATION,
        f'<Measurement xmlns="{MEASUREMENTS_NS}"',
        _attribute("Label", log.label),
        _attribute("Uuid", log.uuid),
        _attribute("DigestAlg", log.digest_alg),
        ">",
    ]
    for entry in log.entries:
        parts.append(f"<{entry.kind.value}")
        if entry.kind is EntryKind.DIR:
            parts.append(_attribute("Exclude", entry.exclude or ""))
            parts.append(_attribute("Include", entry.include or ""))
        parts.append(_attribute("Path", entry.path))
        for name, value in entry.extra.items():
            parts.append(_attribute(name, value))
        parts.append(f">{entry.digest.lower()}</{entry.kind.value}>")
    parts.append(f"<CumulativeHash>{log.cumulative_hash.lower()}</CumulativeHash></Measurement>")
    return "".join(parts)
