"""PCR value files: what `tpm2_quote -o` writes and `tpm2_checkquote -f` reads, and our JSON.

Values loaded here are unverified claims until :func:`secl.core.quote.verify_quote` binds them to a quote.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence

from secl.core.errors import EvidenceError, QuoteError
from secl.core.hashalg import HashAlg
from secl.core.hextext import hex_problem
from secl.core.tpm import PCRSelection, bitmap_indices

PCRValues = Mapping[HashAlg, Mapping[int, bytes]]
"""Supplied, not yet verified PCR values: bank -> {PCR index: value}."""


# # tpm2-tools 5.4 `tpm2_quote -o FILE` writes, by default (`-F serialized`), a dump of its C structs in the
# host's byte order (little endian on every platform we run): a TPML_PCR_SELECTION (u32 count + 16 padded
# 8-byte TPMS_PCR_SELECTION {u16 hash, u8 sizeofSelect, u8 pcrSelect[4], pad}), a u32 count, then that many
# TPML_DIGEST (u32 count + 8 x TPM2B_DIGEST {u16 size, u8 buffer[64]}), digests in selection order.
# `-F values` writes the bare digests in selection order, so the selection must come from elsewhere.
# tpm2_checkquote -f reads both; keylime's corpus quotepcr.out is the serialized form.

_SEL_HEAD = struct.Struct("<I")
_SEL_SIZE, _SEL_SLOTS, _DIGEST_SIZE, _DIGEST_SLOTS = 8, 16, 66, 8
_SELECTION_BYTES = 4 + _SEL_SLOTS * _SEL_SIZE
_DIGEST_LIST_BYTES = 4 + _DIGEST_SLOTS * _DIGEST_SIZE


def _file_error(message: str) -> QuoteError:
    return QuoteError(f"PCR file: {message}", code="pcr-file-malformed")


def load_pcr_values(
    data: bytes, selection_hint: PCRSelection | Mapping[HashAlg, Sequence[int]] | None = None
) -> dict[HashAlg, dict[int, bytes]]:
    """Load PCR values from our JSON, tpm2-tools' serialized pcrs file, or (with a selection) bare values.

    JSON is ``{"sha256": {"0": "<hex>", ...}}``. A ``-F values`` file needs ``selection_hint``, normally
    :func:`unverified_quote_selection` of the quote it came with. Raises :class:`QuoteError`
    ("pcr-file-malformed"). The result is unverified until :func:`verify_quote` binds it to a quote.
    """
    data = bytes(data)
    if data.lstrip()[:1] == b"{":
        return _load_json(data)
    if len(data) >= _SELECTION_BYTES + 4 and (len(data) - _SELECTION_BYTES - 4) % _DIGEST_LIST_BYTES == 0:
        try:
            return _load_serialized(data)
        except QuoteError:
            if selection_hint is None:
                raise
    if selection_hint is None:
        raise _file_error("not JSON nor a tpm2-tools serialized file; a bare values file needs a selection")
    hint = selection_hint.items() if isinstance(selection_hint, Mapping) else selection_hint
    return _assign(data, [(HashAlg(b), tuple(idx)) for b, idx in hint])


def _load_json(data: bytes) -> dict[HashAlg, dict[int, bytes]]:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise _file_error("JSON top level is not an object")
        out: dict[HashAlg, dict[int, bytes]] = {}
        for name, values in doc.items():
            bank = HashAlg.from_name(name)
            if bank in out or not isinstance(values, dict):
                raise _file_error(f"bank {name!r} is repeated or not an object")
            out[bank] = {_pcr_index(k): _digest(bank, v) for k, v in values.items()}
        return out
    except (ValueError, TypeError, EvidenceError) as exc:
        if isinstance(exc, QuoteError):
            raise
        raise _file_error(f"bad JSON PCR values: {exc}") from None


def _pcr_index(key: str) -> int:
    index = int(key, 10)
    if not 0 <= index < 32 or str(index) != key.strip():
        raise _file_error(f"bad PCR index {key!r}")
    return index


def _digest(bank: HashAlg, text: str) -> bytes:
    digits = text[2:] if text[:2].lower() == "0x" else text
    try:
        value = bytes.fromhex(digits)
    except ValueError:
        raise _file_error(f"{bank.bank_name} value {text!r} {hex_problem(digits)}") from None
    if len(value) != bank.digest_size:
        raise _file_error(f"{bank.bank_name} value of {len(value)} bytes")
    return value


def _load_serialized(data: bytes) -> dict[HashAlg, dict[int, bytes]]:
    (count,) = _SEL_HEAD.unpack_from(data, 0)
    if count > _SEL_SLOTS:
        raise _file_error(f"selection count {count} > {_SEL_SLOTS}")
    selection = []
    for i in range(count):
        alg, size = struct.unpack_from("<HB", data, 4 + i * _SEL_SIZE)
        if size > 4 or alg not in HashAlg._value2member_map_:
            raise _file_error(f"selection {i}: bank 0x{alg:04x}, {size} select bytes")
        start = 4 + i * _SEL_SIZE + 3
        selection.append((HashAlg(alg), bitmap_indices(data[start : start + size])))
    (lists,) = _SEL_HEAD.unpack_from(data, _SELECTION_BYTES)
    if _SELECTION_BYTES + 4 + lists * _DIGEST_LIST_BYTES != len(data):
        raise _file_error(f"{lists} digest lists do not fill {len(data)} bytes")
    digests = []
    for j in range(lists):
        base = _SELECTION_BYTES + 4 + j * _DIGEST_LIST_BYTES
        (n,) = _SEL_HEAD.unpack_from(data, base)
        if n > _DIGEST_SLOTS:
            raise _file_error(f"digest list {j} holds {n} > {_DIGEST_SLOTS} digests")
        for k in range(n):
            off = base + 4 + k * _DIGEST_SIZE
            (size,) = struct.unpack_from("<H", data, off)
            if size > _DIGEST_SIZE - 2:
                raise _file_error(f"digest of {size} bytes")
            digests.append(data[off + 2 : off + 2 + size])
    return _assign_digests(digests, selection)


def _assign(data: bytes, selection: list[tuple[HashAlg, tuple[int, ...]]]) -> dict[HashAlg, dict[int, bytes]]:
    digests, offset = [], 0
    for bank, indices in selection:
        for _ in indices:
            digests.append(data[offset : offset + bank.digest_size])
            offset += bank.digest_size
    if offset != len(data):
        raise _file_error(f"{len(data)} bytes of values, the selection needs {offset}")
    return _assign_digests(digests, selection)


def _assign_digests(
    digests: list[bytes], selection: list[tuple[HashAlg, tuple[int, ...]]]
) -> dict[HashAlg, dict[int, bytes]]:
    wanted = sum(len(indices) for _, indices in selection)
    if len(digests) != wanted:
        raise _file_error(f"{len(digests)} digests for {wanted} selected PCRs")
    out: dict[HashAlg, dict[int, bytes]] = {}
    it = iter(digests)
    for bank, indices in selection:
        if bank in out:
            raise _file_error(f"bank {bank.bank_name} selected twice")
        out[bank] = {}
        for index in indices:
            value = next(it)
            if len(value) != bank.digest_size:
                raise _file_error(f"{bank.bank_name}:{index} value of {len(value)} bytes")
            out[bank][index] = value
    return out


def dump_pcr_values_json(values: PCRValues) -> bytes:
    """Encode PCR values as our JSON file format."""
    doc = {HashAlg(b).bank_name: {str(i): v.hex() for i, v in sorted(p.items())} for b, p in values.items()}
    return json.dumps(doc, indent=1).encode()


def dump_pcr_values_tpm2_tools(values: PCRValues) -> bytes:
    """Encode PCR values as tpm2-tools' serialized pcrs file (what ``tpm2_checkquote -f`` reads)."""
    if len(values) > _SEL_SLOTS:
        raise _file_error(f"more than {_SEL_SLOTS} banks")
    selection = bytearray(_SELECTION_BYTES)
    _SEL_HEAD.pack_into(selection, 0, len(values))
    digests: list[bytes] = []
    for i, (bank, pcrs) in enumerate(values.items()):
        bitmap = bytearray(4)
        for index in sorted(pcrs):
            bitmap[index // 8] |= 1 << (index % 8)
            digests.append(pcrs[index])
        struct.pack_into("<HB4s", selection, 4 + i * _SEL_SIZE, HashAlg(bank), 3, bytes(bitmap))
    chunks = [digests[k : k + _DIGEST_SLOTS] for k in range(0, len(digests), _DIGEST_SLOTS)]
    out = bytearray(selection) + _SEL_HEAD.pack(len(chunks))
    for chunk in chunks:
        block = bytearray(_DIGEST_LIST_BYTES)
        _SEL_HEAD.pack_into(block, 0, len(chunk))
        for k, digest in enumerate(chunk):
            struct.pack_into("<H64s", block, 4 + k * _DIGEST_SIZE, len(digest), digest)
        out += block
    return bytes(out)
