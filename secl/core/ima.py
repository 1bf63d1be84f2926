"""IMA runtime measurement logs: parse the ASCII and binary forms, check template hashes, replay PCR 10.

The kernel's Integrity Measurement Architecture logs one entry per measured file (or buffer) and extends
the entry's *template hash* into a PCR, usually 10. The kernel exports the same list twice:
``ascii_runtime_measurements`` (``PCR template-hash template-name fields...`` lines) and
``binary_runtime_measurements`` (little-endian records). Both carry enough to rebuild the *template data*,
the bytes the template hash is computed over, so a verifier can bind each path and file digest to the
hash that reached the TPM.

Nothing parsed here is trustworthy on its own: the log is the host's claim. A caller must first check
template hashes (:meth:`IMALog.verify_template_hashes`) and then compare :meth:`IMALog.replay` with a
PCR value a quote vouched for; only then do the paths and digests mean anything.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from secl.core.errors import IMALogError
from secl.core.hashalg import HashAlg
from secl.core.hextext import hex_problem

IMA_PCR = 10
LogFormat = Literal["ascii", "binary"]

_U32 = struct.Struct("<I")
# The legacy "ima" template hashes the file name NUL-padded to IMA_EVENT_NAME_LEN_MAX + 1 bytes.
_IMA_NAME_PADDED_SIZE = 256
_IMA_DIGEST_SIZE = 20
# The kernel caps template names at 15 characters; a little slack costs nothing and tolerates custom names.
_MAX_TEMPLATE_NAME = 64
# IMA may be configured to any PCR, but a TPM 2.0 has at most 32; anything above is corruption.
_MAX_PCR = 31
_TEMPLATE_HASH_ALGS = {20: HashAlg.SHA1, 32: HashAlg.SHA256, 48: HashAlg.SHA384, 64: HashAlg.SHA512}
_HASHERS_BY_SIZE = {20: hashlib.sha1, 32: hashlib.sha256, 48: hashlib.sha384, 64: hashlib.sha512}
# Old kernels wrote sha1/md5 d-ng digests without the "algo:\0" prefix; the size is all that is left.
_UNPREFIXED_DIGEST_ALGS = {20: "sha1", 16: "md5"}
_FIELD_LAYOUTS = {
    "ima-ng": ("d-ng", "n-ng"),
    "ima-sig": ("d-ng", "n-ng", "sig"),
    "ima-buf": ("d-ng", "n-ng", "buf"),
}
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_PCR_TEXT = re.compile(r"[0-9]{1,3}")
_ASCII_START = re.compile(rb"[\r\n]*[0-9]{1,10} [0-9a-fA-F]")
_TEMPLATE_NAME = re.compile(rb"[\x21-\x7e]+")
_D_NG_PREFIX = re.compile(rb"[\x21-\x7e]+:\0")


class IMAEntry(NamedTuple):
    """One measurement, exactly as the host logged it (untrusted until hashes and replay are checked).

    Immutable like the core's frozen dataclasses, but a NamedTuple: a log holds tens of thousands of
    entries, and a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost three times
    as much to build as the whole tuple (bench/ima.py).
    """

    # 0-based position in the log. (It shadows tuple.index, which no caller of an entry wants.)
    index: int  # type: ignore[assignment]
    pcr: int
    template_hash: bytes
    template_name: str
    path: str  # n-ng / n field; for ima-buf the buffer's name (".ima", "kexec-cmdline"...)
    digest_alg: str  # lower-case kernel name ("sha256"); "" when the template has no digest field we know
    digest: bytes
    # The bytes the kernel hashed into template_hash (for "ima": digest + padded name). None when the
    # template is unknown and the ASCII form does not say how to rebuild them.
    template_data: bytes | None
    fields: tuple[bytes, ...]  # the template's fields, decoded to bytes
    signature: bytes | None = None  # ima-sig
    buffer: bytes | None = None  # ima-buf
    line: int | None = None  # 1-based line of the ASCII log

    @property
    def is_violation(self) -> bool:
        """True for the kernel's open-writers/ToMToU records: all-zero hash, extended as ff...ff."""
        return not any(self.template_hash)

    @property
    def is_verifiable(self) -> bool:
        return self.template_data is not None

    @property
    def template_hash_alg(self) -> HashAlg:
        return _TEMPLATE_HASH_ALGS[len(self.template_hash)]

    def where(self) -> str:
        """Name the entry for an error or report line: index, ASCII line and path."""
        line = f" (line {self.line})" if self.line is not None else ""
        return f"entry {self.index}{line} {self.path or self.template_name!r}"

    def to_dict(self) -> dict[str, object]:
        digest = f"{self.digest_alg}:{self.digest.hex()}" if self.digest_alg else self.digest.hex()
        return {
            "index": self.index,
            "pcr": self.pcr,
            "template": self.template_name,
            "template_hash": self.template_hash.hex(),
            "path": self.path,
            "digest": digest,
            "violation": self.is_violation,
        }


@dataclass(frozen=True, slots=True)
class TemplateHashMismatch:
    """An entry whose logged template hash is not the hash of its template data."""

    entry: IMAEntry
    computed: bytes

    def describe(self) -> str:
        return (
            f"{self.entry.where()}: logged {self.entry.template_hash.hex()}, "
            f"template data hashes to {self.computed.hex()}"
        )


@dataclass(frozen=True, slots=True)
class IMALog:
    """A parsed IMA measurement list. Untrusted: see the module docstring for what makes it evidence."""

    entries: tuple[IMAEntry, ...]
    format: LogFormat
    # Bytes after the last whole record that were ignored on request (see parse_binary_ima_log).
    ignored_tail: bytes = b""

    def template_hash_mismatches(self) -> tuple[TemplateHashMismatch, ...]:
        """List the entries whose template hash is wrong; violations and unverifiable ones are skipped."""
        found = []
        hashers = _HASHERS_BY_SIZE
        for entry in self.entries:
            data, logged = entry.template_data, entry.template_hash
            if data is None or not any(logged):  # unverifiable, or a violation
                continue
            computed = hashers[len(logged)](data).digest()
            if computed != logged:
                found.append(TemplateHashMismatch(entry, computed))
        return tuple(found)

    def unverifiable_entries(self) -> tuple[IMAEntry, ...]:
        # template_data first: it is there for nearly every entry, and cheaper to test than a violation.
        return tuple(e for e in self.entries if e.template_data is None and not e.is_violation)

    def verify_template_hashes(self, *, allow_unverifiable: bool = False) -> None:
        """Raise :class:`IMALogError` unless every entry's template hash matches its data.

        An entry of an unknown template in an ASCII log cannot be checked; its path and digest could
        be anything, so it fails verification too unless the caller says it will not rely on them.
        """
        mismatches = self.template_hash_mismatches()
        if mismatches:
            listed = "; ".join(m.describe() for m in mismatches[:5])
            more = f" (and {len(mismatches) - 5} more)" if len(mismatches) > 5 else ""
            raise IMALogError(
                f"{len(mismatches)} IMA template hash mismatch(es): {listed}{more}",
                code="ima-template-hash-mismatch",
            )
        unverifiable = self.unverifiable_entries()
        if unverifiable and not allow_unverifiable:
            raise IMALogError(
                f"IMA {unverifiable[0].where()} uses template {unverifiable[0].template_name!r}, "
                f"whose template hash cannot be checked ({len(unverifiable)} such entries)",
                code="ima-template-unverifiable",
            )

    def replay(self, bank: HashAlg | None = None, pcr: int = IMA_PCR) -> bytes:
        """Return the value ``pcr`` of ``bank`` reaches from zeros by extending every entry of the log.

        With ``bank=None`` the log's own template-hash algorithm is used. For any other bank each entry
        is extended with ``bank.hash(template_data)``, which is what kernels extend into non-SHA1 banks.
        """
        alg = bank or self._native_alg()
        size, extend = alg.digest_size, alg.hasher
        value, violation = bytes(size), b"\xff" * size
        for entry in self.entries:
            if entry.pcr != pcr:
                continue
            logged = entry.template_hash
            if not any(logged):
                digest = violation
            elif _TEMPLATE_HASH_ALGS.get(len(logged)) is alg:
                # The logged hash is what the kernel extended; a wrong one shows up as a replay mismatch.
                digest = logged
            else:
                digest = _extended_digest(entry, alg)
            value = extend(value + digest)
        return value

    @property
    def boot_aggregate_entry(self) -> IMAEntry | None:
        return next((e for e in self.entries if e.path == "boot_aggregate"), None)

    @property
    def boot_aggregate(self) -> bytes | None:
        """The file digest of the first ``boot_aggregate`` entry: a hash over PCRs 0-9 (0-7 on old kernels)."""
        entry = self.boot_aggregate_entry
        return entry.digest if entry is not None else None

    def to_dict(self) -> dict[str, object]:
        return {
            "format": self.format,
            "entries": [e.to_dict() for e in self.entries],
            "ignored_tail_bytes": len(self.ignored_tail),
        }

    def _native_alg(self) -> HashAlg:
        return self.entries[0].template_hash_alg if self.entries else HashAlg.SHA1


def _extended_digest(entry: IMAEntry, alg: HashAlg) -> bytes:
    if entry.is_violation:
        return b"\xff" * alg.digest_size
    if entry.template_hash_alg is alg:
        # The logged hash is what the kernel extended; a wrong one shows up as a replay mismatch.
        return entry.template_hash
    if entry.template_data is None:
        raise IMALogError(
            f"cannot replay the {alg.bank_name} bank: IMA {entry.where()} has template "
            f"{entry.template_name!r}, whose template data cannot be rebuilt",
            code="ima-replay-impossible",
        )
    return alg.hash(entry.template_data)


def compute_boot_aggregate(
    pcrs: Mapping[int, bytes], alg: HashAlg, pcr_indices: Iterable[int] = range(10)
) -> bytes:
    """Return IMA's boot_aggregate: ``alg`` over the concatenated PCR values (0-9; old kernels 0-7)."""
    values = []
    for index in pcr_indices:
        value = pcrs.get(index)
        if value is None or len(value) != alg.digest_size:
            raise IMALogError(
                f"boot_aggregate needs a {alg.digest_size}-byte {alg.bank_name} value for PCR {index}",
                code="ima-boot-aggregate-input",
            )
        values.append(value)
    return alg.hash(b"".join(values))


# --- parsing -------------------------------------------------------------------------------------------


def parse_ima_log(data: bytes, *, tolerate_partial_tail: bool = False) -> IMALog:
    """Parse either form of the measurement list, telling them apart by the ASCII form's leading digits."""
    if not data.strip(b"\r\n"):
        raise IMALogError("empty IMA log", code="ima-log-empty")
    # A binary log starts with a little-endian u32 PCR index, so its second byte is NUL, never a space.
    if _ASCII_START.match(data):
        return parse_ascii_ima_log(data)
    return parse_binary_ima_log(data, tolerate_partial_tail=tolerate_partial_tail)


def parse_ascii_ima_log(text: str | bytes) -> IMALog:
    """Parse ``ascii_runtime_measurements``; errors name the 1-based line."""
    # Text given as str is checked the same way: lone surrogates cannot be the bytes the kernel hashed.
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    text = _decode_ascii_log(data)
    entries: list[IMAEntry] = []
    append = entries.append
    for number, raw_line in enumerate(text.split("\n"), start=1):
        line = raw_line.removesuffix("\r")
        entry = _ima_ng_entry(line, len(entries), number)
        if entry is not None:
            append(entry)
            continue
        if not line.strip():
            continue
        try:
            entries.append(_parse_ascii_line(line, len(entries), number))
        except IMALogError as err:
            raise IMALogError(f"IMA log line {number} (entry {len(entries)}): {err.message}") from None
    if not entries:
        raise IMALogError("empty IMA log", code="ima-log-empty")
    return IMALog(tuple(entries), "ascii")


# The line nearly every log is made of: ``PCR template-hash ima-ng algo:digest path``, read with a split and a
# few checks. Any other line (another template, an old unprefixed digest, anything malformed) goes through
# _parse_ascii_line, which reads every template and says what is wrong; both read an ima-ng line alike
# (tests/test_ima.py).
_HEX_SIZES = frozenset({40, 64, 96, 128})
# PCR numbers as the kernel writes them (no leading zeros: "010" takes the general reader's path), and the
# d-ng prefixes of the kernel's hash algorithm names (an unusual name takes the general reader's path too).
_PCR_NUMBERS = {str(i): i for i in range(_MAX_PCR + 1)}
_D_NG_PREFIXES = {
    name: name.encode() + b":\0"
    for name in ("md5", "sha1", "rmd160", "sha224", "sha256", "sha384", "sha512", "wp256", "wp384", "wp512",
                 "tgr128", "tgr160", "tgr192", "sm3", "sm3-256", "streebog256", "streebog512")
}  # fmt: skip
_new_tuple = tuple.__new__


def _ima_ng_entry(line: str, index: int, number: int) -> IMAEntry | None:
    parts = line.split(" ", 4)
    if len(parts) != 5 or parts[2] != "ima-ng":
        return None
    pcr_text, hash_hex, _, d_ng_text, path = parts
    alg, _, digest_hex = d_ng_text.rpartition(":")
    pcr, prefix = _PCR_NUMBERS.get(pcr_text), _D_NG_PREFIXES.get(alg)
    if pcr is None or prefix is None or len(hash_hex) not in _HEX_SIZES:
        return None
    try:
        template_hash, digest = bytes.fromhex(hash_hex), bytes.fromhex(digest_hex)
    except ValueError:
        return None
    # fromhex skips whitespace; the exact lengths make sure there was none.
    if len(template_hash) * 2 != len(hash_hex) or len(digest) * 2 != len(digest_hex):
        return None
    d_ng = prefix + digest
    n_ng = path.encode() + b"\0"
    data = b"%b%b%b%b" % (_U32.pack(len(d_ng)), d_ng, _U32.pack(len(n_ng)), n_ng)
    # The path came from UTF-8 text, so it is the name _decode_name would show. tuple.__new__ directly:
    # the NamedTuple's own __new__ only adds the defaults, and all are given here.
    fields = (index, pcr, template_hash, "ima-ng", path, alg, digest, data, (d_ng, n_ng), None, None, number)
    return _new_tuple(IMAEntry, fields)


def parse_binary_ima_log(
    data: bytes, *, template_hash_size: Literal[20, 32] | None = None, tolerate_partial_tail: bool = False
) -> IMALog:
    """Parse ``binary_runtime_measurements`` (20-byte template hashes, or 32 for the sha256 file).

    Without ``template_hash_size`` both sizes are tried where the first record's header allows them,
    20 first; the one that decodes the whole log wins, so the choice is never a guess.

    The kernel never emits a partial record, but copies of logs cut short exist (tpm2-tss's test logs end
    in a few stray bytes). ``tolerate_partial_tail`` accepts a tail too short to hold one record header
    (PCR, template hash, name length) and keeps it in :attr:`IMALog.ignored_tail`, so it is reported;
    a record whose header is there but whose body is cut is always an error.
    """
    if not data:
        raise IMALogError("empty IMA log", code="ima-log-empty")
    sizes = (template_hash_size,) if template_hash_size in (20, 32) else _plausible_template_hash_sizes(data)
    first_error: IMALogError | None = None
    for size in sizes:
        try:
            entries, tail = _parse_binary_entries(data, size, tolerate_partial_tail)
            return IMALog(entries, "binary", tail)
        except IMALogError as err:
            first_error = first_error or err
    assert first_error is not None  # sizes is never empty
    raise first_error


def _decode_ascii_log(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise IMALogError(f"IMA log line {line}: not UTF-8 text (byte {err.start})") from None


def _parse_ascii_line(line: str, index: int, number: int) -> IMAEntry:
    parts = line.split(" ", 3)
    if len(parts) < 4:
        raise IMALogError(f"expected 'PCR template-hash template-name fields...', got {len(parts)} fields")
    pcr = _checked_pcr(parts[0])
    template_hash = _parse_hex(parts[1], "template hash")
    if len(template_hash) not in _TEMPLATE_HASH_ALGS:
        raise IMALogError(f"template hash of {len(template_hash)} bytes matches no hash algorithm")
    name, rest = parts[2], parts[3]
    readings = [
        _build_entry(index, pcr, template_hash, name, fields, line=number)
        for fields in _ascii_field_candidates(name, rest)
    ]
    return next((entry for entry in readings if _matches_logged_hash(entry)), readings[0])


def _ascii_field_candidates(name: str, rest: str) -> list[tuple[bytes, ...]]:
    """Rebuild the binary fields from their ASCII rendering; more than one reading when spaces blur it."""
    if name == "ima":
        digest, path = _split_two(rest, "ima")
        return [(_parse_hex(digest, "file digest"), path.encode())]
    if name == "ima-ng":
        digest, path = _split_two(rest, name)
        return [(_encode_d_ng(digest), path.encode() + b"\0")]
    if name in ("ima-sig", "ima-buf"):
        digest, tail = _split_two(rest, name)
        d_ng = _encode_d_ng(digest)
        # The last field is hex, possibly empty, after a space; a path may hold spaces too, so both
        # readings are offered and the template hash picks the one the kernel hashed.
        readings: list[tuple[bytes, ...]] = []
        path, _, last = tail.rpartition(" ")
        if path and _HEX.fullmatch(last):
            readings.append((d_ng, path.encode() + b"\0", bytes.fromhex(last)))
        readings.append((d_ng, tail.encode() + b"\0", b""))
        return readings
    return [tuple(field.encode() for field in rest.split(" "))]


def _matches_logged_hash(entry: IMAEntry) -> bool:
    data = entry.template_data
    return data is not None and entry.template_hash_alg.hash(data) == entry.template_hash


def _split_two(rest: str, template: str) -> tuple[str, str]:
    digest, sep, tail = rest.partition(" ")
    if not sep:
        raise IMALogError(f"{template} entry needs a digest and a name")
    return digest, tail


def _encode_d_ng(text: str) -> bytes:
    alg, sep, hex_digest = text.rpartition(":")
    digest = _parse_hex(hex_digest, "file digest")
    if not sep:
        return digest
    if not alg.isascii() or not alg.isprintable():
        raise IMALogError(f"bad digest algorithm name {alg!r}")
    return alg.encode() + b":\0" + digest


def _checked_pcr(pcr: int | str) -> int:
    if isinstance(pcr, str):
        if not _PCR_TEXT.fullmatch(pcr):
            raise IMALogError(f"bad PCR index {pcr!r}")
        pcr = int(pcr)
    if pcr > _MAX_PCR:
        raise IMALogError(f"PCR index {pcr} is out of range")
    return pcr


def _parse_hex(text: str, what: str) -> bytes:
    if not _HEX.fullmatch(text):
        raise IMALogError(f"{what} {hex_problem(text)}: {text[:80]!r}")
    return bytes.fromhex(text)


def _plausible_template_hash_sizes(data: bytes) -> tuple[int, ...]:
    """Return the template hash sizes (20, 32) after which a sane template name length and name follow."""
    sizes = []
    for size in (20, 32):
        start = 4 + size
        if len(data) < start + 4:
            continue
        (name_len,) = _U32.unpack_from(data, start)
        name = data[start + 4 : start + 4 + name_len]
        if 0 < name_len <= _MAX_TEMPLATE_NAME and len(name) == name_len and _TEMPLATE_NAME.fullmatch(name):
            sizes.append(size)
    return tuple(sizes) or (20,)


class _Reader:
    """Bounds-checked reads from a byte string; every short read is an :class:`IMALogError`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, size: int, what: str) -> bytes:
        left = len(self.data) - self.offset
        if size > left:
            raise IMALogError(f"{what} needs {size} bytes but only {left} are left (truncated log?)")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def u32(self, what: str) -> int:
        return _U32.unpack(self.take(4, what))[0]

    def sized(self, what: str, limit: int | None = None) -> bytes:
        size = self.u32(f"{what} length")
        if limit is not None and size > limit:
            raise IMALogError(f"{what} length {size} exceeds the maximum of {limit}")
        return self.take(size, what)


def _parse_binary_entries(
    data: bytes, hash_size: int, tolerate_partial_tail: bool
) -> tuple[tuple[IMAEntry, ...], bytes]:
    reader = _Reader(data)
    entries: list[IMAEntry] = []
    while (offset := reader.offset) < len(data):
        if tolerate_partial_tail and len(data) - offset < 4 + hash_size + 4:
            return tuple(entries), data[offset:]
        try:
            entries.append(_parse_binary_entry(reader, len(entries), hash_size))
        except IMALogError as err:
            raise IMALogError(
                f"binary IMA log entry {len(entries)} at offset {offset}: {err.message}"
            ) from None
    return tuple(entries), b""


def _parse_binary_entry(reader: _Reader, index: int, hash_size: int) -> IMAEntry:
    pcr = _checked_pcr(reader.u32("PCR index"))
    template_hash = reader.take(hash_size, "template hash")
    raw_name = reader.sized("template name", _MAX_TEMPLATE_NAME)
    if not _TEMPLATE_NAME.fullmatch(raw_name):
        raise IMALogError(f"template name {raw_name[:40]!r} is not printable ASCII")
    name = raw_name.decode("ascii")
    if name == "ima":
        # The legacy template alone has no overall length: a fixed digest, then a sized file name.
        digest = reader.take(_IMA_DIGEST_SIZE, "file digest")
        file_name = reader.sized("file name", _IMA_NAME_PADDED_SIZE - 1)
        return _build_entry(index, pcr, template_hash, name, (digest, file_name))
    template_data = reader.sized("template data")
    fields = _split_fields(template_data, name)
    return _build_entry(index, pcr, template_hash, name, fields, raw_data=template_data)


def _split_fields(template_data: bytes, name: str) -> tuple[bytes, ...]:
    """Split template data into its u32-length-prefixed fields; unknown templates may be opaque."""
    reader = _Reader(template_data)
    fields: list[bytes] = []
    try:
        while reader.offset < len(template_data):
            fields.append(reader.sized(f"field {len(fields)}"))
    except IMALogError:
        if name in _FIELD_LAYOUTS:
            raise
        return (template_data,)
    return tuple(fields)


def _join_fields(fields: tuple[bytes, ...]) -> bytes:
    return b"".join(_U32.pack(len(field)) + field for field in fields)


def _build_entry(
    index: int,
    pcr: int,
    template_hash: bytes,
    name: str,
    fields: tuple[bytes, ...],
    *,
    raw_data: bytes | None = None,
    line: int | None = None,
) -> IMAEntry:
    """Interpret a template's fields and work out the template data its hash covers.

    ``raw_data`` is the binary log's template data, or None for a line of the ASCII log.
    """
    common: dict[str, Any] = {
        "index": index,
        "pcr": pcr,
        "template_hash": template_hash,
        "template_name": name,
        "line": line,
    }
    if name == "ima":
        digest, file_name = fields
        if len(file_name) >= _IMA_NAME_PADDED_SIZE:
            raise IMALogError(f"file name of {len(file_name)} bytes is longer than the ima template allows")
        data = digest + file_name.ljust(_IMA_NAME_PADDED_SIZE, b"\0")
        path = _decode_name(file_name)
        return IMAEntry(
            **common, path=path, digest_alg="sha1", digest=digest, template_data=data, fields=fields
        )
    layout = _FIELD_LAYOUTS.get(name)
    if layout is None:
        return _unknown_template_entry(common, fields, raw_data)
    if len(fields) != len(layout):
        raise IMALogError(f"template {name} needs {len(layout)} fields, got {len(fields)}")
    digest_alg, digest = _decode_d_ng(fields[0])
    extra = fields[2] if len(fields) > 2 else None
    return IMAEntry(
        **common,
        path=_decode_name(fields[1].removesuffix(b"\0")),
        digest_alg=digest_alg,
        digest=digest,
        template_data=_join_fields(fields),
        fields=fields,
        signature=extra if name == "ima-sig" else None,
        buffer=extra if name == "ima-buf" else None,
    )


def _unknown_template_entry(
    common: dict[str, Any], fields: tuple[bytes, ...], raw_data: bytes | None
) -> IMAEntry:
    """Keep an unknown template's fields; only a binary one has exact template data to hash."""
    digest_alg, digest, path = "", b"", ""
    # Most templates start with d-ng and n-ng; when a binary one seems to, show them, relying on nothing.
    if raw_data is not None and len(fields) >= 2 and _D_NG_PREFIX.match(fields[0]):
        digest_alg, digest = _decode_d_ng(fields[0])
        path = _decode_name(fields[1].removesuffix(b"\0"))
    return IMAEntry(
        **common, path=path, digest_alg=digest_alg, digest=digest, template_data=raw_data, fields=fields
    )


def _decode_d_ng(field: bytes) -> tuple[str, bytes]:
    """Split a d-ng field, ``<algo>:\\0<digest>``, or a bare sha1/md5 digest from old kernels."""
    alg, sep, digest = field.partition(b":\0")
    if sep and _TEMPLATE_NAME.fullmatch(alg):
        return alg.decode("ascii"), digest
    if len(field) in _UNPREFIXED_DIGEST_ALGS:
        return _UNPREFIXED_DIGEST_ALGS[len(field)], field
    raise IMALogError(f"digest field of {len(field)} bytes has no valid algorithm prefix")


def _decode_name(raw: bytes) -> str:
    # File names are bytes to the kernel; the template data keeps them exact, so display may escape.
    return raw.decode("utf-8", errors="backslashreplace")
