"""SecL application manifests: the ``lib:wml:manifests:1.0`` Manifest XML that says what to measure.

A manifest names files, directories and symbolic links under a root file system::

    <Manifest xmlns="lib:wml:manifests:1.0" Label="app" Uuid="<uuid>" DigestAlg="SHA384">
      <File Path="/opt/app/bin/app"/>
      <File Path="/opt/app/lib/.*\\.so" SearchType="regex"/>
      <Dir Path="/opt/app/bin" Include=".*" Exclude="\\.log$" FilterType="regex"/>
      <Symlink Path="/opt/app/current"/>
    </Manifest>

What each entry means, as SecL's measuring tool defines it (``secl.host.measure`` does the I/O):

- ``File``: the content of one regular file (a final symbolic link is followed, inside the root).
- ``Dir``: the names of the directory's entries that are not directories (files, links, devices...),
  one level deep, kept when they match ``Include`` and do not match ``Exclude``. Both are searched for
  anywhere in the name (``grep -E`` semantics); ``FilterType="wildcard"`` turns a shell pattern (``*``,
  ``?``) into an anchored regular expression first. An empty filter is no filter.
- ``Symlink``: the link's own path and its target as stored, never followed.
- ``SearchType="regex"``: ``Path`` is a regular expression that the whole path of an entry must match
  (``find -regex`` semantics); the search walks down from the longest literal directory prefix, never
  following links, and finds regular files, directories or links according to the element.

Regular expressions are Python's, with POSIX bracket classes (``[[:digit:]]``) translated; for the
patterns manifests use (``.*``, ``\\.sh$``, alternations, classes) Python, POSIX ERE and GNU find agree.

Parsing refuses what a measuring agent must not be fed: DTDs and entities (defusedxml), documents over
:data:`MAX_MANIFEST_BYTES` or with more than :data:`MAX_ENTRIES` entries, relative paths, ``..``
components, unknown elements or attributes, and regular expressions that do not compile.
"""

from __future__ import annotations

import enum
import re
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from secl.core.errors import EvidenceError
from secl.core.hashalg import HashAlg

__all__ = [
    "MANIFESTS_NS",
    "MAX_ENTRIES",
    "MAX_MANIFEST_BYTES",
    "DigestAlg",
    "EntryKind",
    "Manifest",
    "ManifestEntry",
    "ManifestError",
    "PathPattern",
    "parse_manifest",
    "wildcard_to_regex",
]

MANIFESTS_NS = "lib:wml:manifests:1.0"
# SecL's own workload-agent manifest (pkg/tagent/test/resources/manifest_wlagent.xml) is a Manifest in the
# measurements namespace; SecL's parser never looked at the namespace, so neither do we beyond these.
_NAMESPACES = ("", MANIFESTS_NS, "lib:wml:measurements:1.0")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_ENTRIES = 10_000
_MAX_PATTERN = 4096
_REGEX_CHARS = frozenset(".^$*+?()[]{}|\\")
_POSIX_CLASSES = {
    "[:alpha:]": "a-zA-Z",
    "[:digit:]": "0-9",
    "[:alnum:]": "a-zA-Z0-9",
    "[:upper:]": "A-Z",
    "[:lower:]": "a-z",
    "[:xdigit:]": "0-9A-Fa-f",
    "[:space:]": " \\t\\n\\r\\f\\v",
    "[:blank:]": " \\t",
    "[:punct:]": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
}
_ROOT_ATTRIBUTES = frozenset({"Label", "Uuid", "DigestAlg"})
_ENTRY_ATTRIBUTES = {
    "File": frozenset({"Path", "SearchType"}),
    "Symlink": frozenset({"Path", "SearchType"}),
    "Dir": frozenset({"Path", "SearchType", "Include", "Exclude", "FilterType"}),
}


class ManifestError(EvidenceError):
    """A manifest cannot be used; ``code`` says why (``manifest-xml-forbidden``, ``path-escapes-root``...)."""

    code = "manifest-invalid"


class EntryKind(enum.StrEnum):
    """The three things a manifest measures; the value is the XML element name."""

    FILE = "File"
    DIR = "Dir"
    SYMLINK = "Symlink"

    @property
    def flavor_type(self) -> str:
        """The ``type`` SecL's SOFTWARE flavors give a measurement of this kind."""
        return {"File": "fileMeasurementType", "Dir": "directoryMeasurementType"}.get(
            self.value, "symlinkMeasurementType"
        )


class DigestAlg(enum.StrEnum):
    """The digest algorithms SecL's measuring tools accept; the value is the spelling they write."""

    SHA256 = "SHA256"
    SHA384 = "SHA384"

    @property
    def hash_alg(self) -> HashAlg:
        return HashAlg[self.value]

    @classmethod
    def parse(cls, text: str | None, *, error: type[EvidenceError]) -> DigestAlg:
        name = (text or "").strip().upper().replace("-", "")
        try:
            return cls(name)
        except ValueError:
            raise error(
                f"DigestAlg {text!r} is not supported (SHA384 or SHA256)", code="digest-alg-unsupported"
            ) from None


def wildcard_to_regex(pattern: str) -> str:
    """SecL's FilterType="wildcard": ``*`` any run, ``?`` one character, the rest literal, anchored."""
    out = ["^"]
    for char in pattern:
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
    out.append("$")
    return "".join(out)


def _compile(pattern: str, what: str) -> re.Pattern[str]:
    if len(pattern) > _MAX_PATTERN:
        raise ManifestError(f"{what}: regular expression longer than {_MAX_PATTERN} characters")
    translated = pattern
    for posix, python in _POSIX_CLASSES.items():
        translated = translated.replace(posix, python)
    try:
        return re.compile(translated)
    except re.error as exc:
        raise ManifestError(
            f"{what}: invalid regular expression {pattern!r}: {exc}", code="regex-invalid"
        ) from None


@dataclass(frozen=True)
class PathPattern:
    """A manifest ``Path``: a literal absolute path, or a regular expression a found path must match."""

    text: str
    regex: re.Pattern[str] | None = field(default=None, compare=False)

    @property
    def is_regex(self) -> bool:
        return self.regex is not None

    @property
    def search_root(self) -> str:
        """Where a search starts: the directories before the first component with a regex character
        (every match lies below it, since the expression must match the whole path)."""
        parts = [p for p in self.text.split("/") if p]
        literal: list[str] = []
        for part in parts[:-1]:
            if _REGEX_CHARS.intersection(part):
                break
            literal.append(part)
        return "/" + "/".join(literal)

    def matches(self, path: str) -> bool:
        """True when ``path`` (absolute, inside the root) is this literal path or matches the expression."""
        if self.regex is None:
            return path == self.text
        return self.regex.fullmatch(path) is not None


@dataclass(frozen=True)
class ManifestEntry:
    """One ``File``, ``Dir`` or ``Symlink`` element. ``include``/``exclude`` are regular expressions (a
    wildcard filter is already converted, as SecL writes it into the measurement)."""

    kind: EntryKind
    path: PathPattern
    include: str = ""
    exclude: str = ""
    filter_type: str = "regex"
    _include: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    _exclude: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def selects(self, name: str) -> bool:
        """Whether a directory entry's name is part of a ``Dir`` measurement."""
        if self._include is not None and self._include.search(name) is None:
            return False
        return self._exclude is None or self._exclude.search(name) is None


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: what to measure, under which label and uuid, with which digest."""

    label: str
    uuid: str
    digest_alg: DigestAlg
    entries: tuple[ManifestEntry, ...]

    @property
    def hash_alg(self) -> HashAlg:
        return self.digest_alg.hash_alg

    @property
    def event_tag(self) -> str:
        """The PCR 15 event tag SecL writes for this manifest's measurement: ``<Label>-<Uuid>``."""
        return f"{self.label}-{self.uuid}"

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self.entries)


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _check_path(text: str | None, where: str) -> str:
    if not text:
        raise ManifestError(f"{where}: Path is missing or empty", code="manifest-path-invalid")
    if not text.startswith("/"):
        raise ManifestError(f"{where}: Path {text!r} is not absolute", code="manifest-path-invalid")
    if ".." in text.split("/"):
        raise ManifestError(f"{where}: Path {text!r} climbs with '..'", code="path-escapes-root")
    return text


def _entry(element: ET.Element, kind: EntryKind, where: str) -> ManifestEntry:
    unknown = sorted(set(element.attrib) - _ENTRY_ATTRIBUTES[kind.value])
    if unknown:
        raise ManifestError(f"{where}: unknown attribute(s) {', '.join(unknown)}")
    if len(element) or (element.text or "").strip():
        raise ManifestError(f"{where}: a manifest entry has no content")
    raw_path = element.get("Path")
    search = element.get("SearchType")
    if search is not None and search.strip().lower() != "regex":
        raise ManifestError(f"{where}: SearchType {search!r} is not supported (only regex)")
    if search is None:
        path = PathPattern(_check_path(raw_path, where))
    else:
        if not raw_path or not raw_path.startswith("/"):
            raise ManifestError(f"{where}: Path {raw_path!r} is not absolute", code="manifest-path-invalid")
        path = PathPattern(raw_path, _compile(raw_path, f"{where} Path"))
    if kind is not EntryKind.DIR:
        return ManifestEntry(kind, path)
    filter_type = (element.get("FilterType") or "regex").strip().lower()
    if filter_type not in ("regex", "wildcard"):
        raise ManifestError(f"{where}: FilterType {filter_type!r} is not supported (regex or wildcard)")
    filters = []
    for name in ("Include", "Exclude"):
        value = element.get(name) or ""
        if value and filter_type == "wildcard":
            value = wildcard_to_regex(value)
        filters.append((value, _compile(value, f"{where} {name}") if value else None))
    (include, include_re), (exclude, exclude_re) = filters
    return ManifestEntry(kind, path, include, exclude, filter_type, include_re, exclude_re)


def parse_manifest(data: bytes | str) -> Manifest:
    """Parse a Manifest XML document; raise :class:`ManifestError` for anything unusable."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"manifest is {len(raw)} bytes, more than the {MAX_MANIFEST_BYTES} allowed",
            code="manifest-too-large",
        )
    try:
        root = SafeET.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ManifestError(
            f"manifest XML refused: {type(exc).__name__} (DTDs and entities are not allowed)",
            code="manifest-xml-forbidden",
        ) from None
    except ET.ParseError as exc:
        raise ManifestError(f"manifest is not well-formed XML: {exc}", code="manifest-malformed") from None
    ns, local = _local(root.tag)
    if local != "Manifest" or ns not in _NAMESPACES:
        raise ManifestError(
            f"root element is {root.tag!r}, not a {MANIFESTS_NS} Manifest", code="manifest-malformed"
        )
    unknown = sorted(set(root.attrib) - _ROOT_ATTRIBUTES)
    if unknown:
        raise ManifestError(f"Manifest: unknown attribute(s) {', '.join(unknown)}")
    label = root.get("Label") or ""
    if not label.strip() or not label.isprintable():
        raise ManifestError(
            f"Manifest Label {label!r} is empty or not printable", code="manifest-label-invalid"
        )
    uuid = (root.get("Uuid") or "").strip()
    if uuid:
        try:
            uuid = str(uuidlib.UUID(uuid))
        except ValueError:
            raise ManifestError(
                f"Manifest Uuid {uuid!r} is not a UUID", code="manifest-uuid-invalid"
            ) from None
    digest_alg = DigestAlg.parse(root.get("DigestAlg"), error=ManifestError)
    if len(root) > MAX_ENTRIES:
        raise ManifestError(
            f"manifest has {len(root)} entries, more than the {MAX_ENTRIES} allowed",
            code="manifest-too-large",
        )
    entries = []
    for position, element in enumerate(root, start=1):
        child_ns, child = _local(element.tag)
        where = f"entry {position} <{child}>"
        if child not in _ENTRY_ATTRIBUTES or child_ns not in _NAMESPACES:
            raise ManifestError(f"{where}: unknown element (File, Dir or Symlink expected)")
        entries.append(_entry(element, EntryKind(child), where))
    return Manifest(label, uuid, digest_alg, tuple(entries))
