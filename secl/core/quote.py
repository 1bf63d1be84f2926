"""Verification of TPM2_Quote, TPM2_Certify and creation attestations.

Every verifier checks in one fixed order (structure, TPM-generated magic and type, signature, qualifying
data, then what the attestation binds) and raises on the first failure with a stable code. PCR indices
come only from the signed selection: supplied values that the quote does not cover are rejected, never
silently ignored, so a caller cannot mistake an unquoted value for a verified one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tpm2_pytss.types import TPMS_CREATION_DATA, TPMT_SIGNATURE

from secl.core.errors import CertifyError, EvidenceError, QuoteError, TPMStructureError
from secl.core.hashalg import HashAlg
from secl.core.pcrfile import PCRValues
from secl.core.tpm import (
    TPM_GENERATED_VALUE,
    TPM_ST_ATTEST_CERTIFY,
    TPM_ST_ATTEST_CREATION,
    TPM_ST_ATTEST_QUOTE,
    AKPublic,
    AttestInfo,
    PCRSelection,
    TPMSignature,
    attest_certify_info,
    attest_creation_info,
    attest_quote_info,
    name_hash_alg,
    public_name,
    unmarshal_attest,
    unmarshal_exact,
    unmarshal_public,
    unmarshal_signature,
)

__all__ = [
    "PCRValues",
    "QuoteVerifiedPCRs",
    "VerifiedCertification",
    "VerifiedCreation",
    "VerifiedQuote",
    "secl_qualifying_data",
    "unverified_quote_selection",
    "verify_certify",
    "verify_creation",
    "verify_quote",
]


def secl_qualifying_data(nonce: bytes, asset_tag_digest: bytes | None = None) -> bytes:
    """Return SecL's qualifying data: SHA-256(nonce), or SHA-256(SHA-256(nonce) ‖ tag digest) with a tag."""
    digest = hashlib.sha256(nonce).digest()
    if asset_tag_digest is None:
        return digest
    return hashlib.sha256(digest + asset_tag_digest).digest()


@dataclass(frozen=True, slots=True)
class QuoteVerifiedPCRs:
    """PCR values that a verified quote's signed PCR digest covers, in TPM order.

    ``digests[k]`` holds the values of ``selection[k]``'s PCRs, index by index; :attr:`values` gives the
    same as bank -> {index: value}.
    """

    selection: PCRSelection
    digests: tuple[tuple[bytes, ...], ...]

    @property
    def values(self) -> Mapping[HashAlg, Mapping[int, bytes]]:
        # Built on demand: most callers only compare a few PCRs, and verification stays cheaper.
        return MappingProxyType(
            {
                bank: MappingProxyType(dict(zip(indices, values, strict=True)))
                for (bank, indices), values in zip(self.selection, self.digests, strict=True)
            }
        )

    def get(self, bank: HashAlg, index: int) -> bytes | None:
        for (quoted_bank, indices), values in zip(self.selection, self.digests, strict=True):
            if quoted_bank == bank and index in indices:
                return values[indices.index(index)]
        return None

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {
            bank.bank_name: {str(i): v.hex() for i, v in pcrs.items()} for bank, pcrs in self.values.items()
        }


class _SignedHeader:
    """The TPMS_ATTEST header fields a verified result's signature covers, as read-only properties."""

    __slots__ = ()
    header: AttestInfo

    @property
    def clock(self) -> int:
        return self.header.clock

    @property
    def reset_count(self) -> int:
        return self.header.reset_count

    @property
    def restart_count(self) -> int:
        return self.header.restart_count

    @property
    def safe(self) -> bool:
        return self.header.safe

    @property
    def firmware_version(self) -> int:
        return self.header.firmware_version

    @property
    def qualified_signer(self) -> bytes:
        return self.header.qualified_signer

    @property
    def extra_data(self) -> bytes:
        return self.header.extra_data

    def _header_dict(self) -> dict[str, Any]:
        h = self.header
        return {
            "clock": h.clock,
            "reset_count": h.reset_count,
            "restart_count": h.restart_count,
            "safe": h.safe,
            "firmware_version": h.firmware_version,
            "qualified_signer": h.qualified_signer.hex(),
            "extra_data": h.extra_data.hex(),
        }


@dataclass(frozen=True, slots=True)
class VerifiedQuote(_SignedHeader):
    """A TPM2_Quote whose signature, qualifying data and (if PCR values were given) PCR digest verified.

    ``quoted`` is the signed PCR selection in TPM order (``selection`` gives it as bank -> indices);
    ``pcrs`` the supplied values it covers, or None when none were supplied.
    """

    quoted: PCRSelection
    pcr_digest: bytes
    pcrs: QuoteVerifiedPCRs | None
    signature: TPMSignature
    header: AttestInfo

    @property
    def selection(self) -> Mapping[HashAlg, tuple[int, ...]]:
        return MappingProxyType(dict(self.quoted))

    @property
    def signature_scheme(self) -> str:
        return self.signature.scheme_name

    @property
    def signature_hash(self) -> HashAlg:
        return self.signature.hash_alg

    def to_dict(self) -> dict[str, Any]:
        return {
            "selection": {bank.bank_name: list(idx) for bank, idx in self.quoted},
            "pcr_digest": self.pcr_digest.hex(),
            "pcrs": None if self.pcrs is None else self.pcrs.to_dict(),
            "signature": {"scheme": self.signature_scheme, "hash": self.signature_hash.bank_name},
            **self._header_dict(),
        }


@dataclass(frozen=True, slots=True)
class VerifiedCertification(_SignedHeader):
    """A TPM2_Certify: the AK vouches that the TPM holds the object whose public area is ``certified_public``."""

    certified_name: bytes
    certified_qualified_name: bytes
    certified_public: bytes
    certified_attributes: int
    header: AttestInfo

    def to_dict(self) -> dict[str, Any]:
        return {
            "certified_name": self.certified_name.hex(),
            "certified_qualified_name": self.certified_qualified_name.hex(),
            "certified_public": self.certified_public.hex(),
            "certified_attributes": self.certified_attributes,
            **self._header_dict(),
        }


@dataclass(frozen=True, slots=True)
class VerifiedCreation(_SignedHeader):
    """A creation attestation (TPM_ST_ATTEST_CREATION) of a named object, e.g. of the AK itself."""

    object_name: bytes
    creation_hash: bytes
    header: AttestInfo


def _decode(
    attest: bytes, signature: bytes | TPMT_SIGNATURE, error: type[EvidenceError], prefix: str
) -> tuple[AttestInfo, TPMSignature]:
    try:
        info = unmarshal_attest(attest)
    except TPMStructureError as exc:
        raise error(f"malformed TPMS_ATTEST: {exc.message}", code=f"{prefix}-attest-malformed") from exc
    try:
        sig = unmarshal_signature(signature)
    except TPMStructureError as exc:
        raise error(f"malformed TPMT_SIGNATURE: {exc.message}", code=f"{prefix}-signature-malformed") from exc
    return info, sig


def _check_header(info: AttestInfo, st: int, error: type[EvidenceError], prefix: str) -> None:
    if info.magic != TPM_GENERATED_VALUE:
        raise error(
            f"magic 0x{info.magic:08x} is not TPM_GENERATED_VALUE", code=f"{prefix}-not-tpm-generated"
        )
    if info.type != st:
        raise error(f"attestation type 0x{info.type:04x}, expected 0x{st:04x}", code=f"{prefix}-wrong-type")


def _check_qualifying_data(
    info: AttestInfo, expected: bytes, error: type[EvidenceError], prefix: str
) -> None:
    # Constant time: the qualifying data carries the verifier's nonce.
    if not hmac.compare_digest(info.extra_data, expected):
        raise error(
            "qualifying data (extraData) differs from the expected nonce", code=f"{prefix}-nonce-mismatch"
        )


def verify_quote(
    ak: AKPublic,
    attest: bytes,
    signature: bytes | TPMT_SIGNATURE,
    *,
    qualifying_data: bytes,
    pcrs: PCRValues | None = None,
) -> VerifiedQuote:
    """Verify a TPM2_Quote (marshalled TPMS_ATTEST + TPMT_SIGNATURE) made by ``ak``.

    With ``pcrs`` ({bank: {index: value}}), the values must be exactly those of the signed selection and
    reproduce its PCR digest; they come back as :class:`QuoteVerifiedPCRs`. Raises :class:`QuoteError`.
    """
    info, sig = _decode(attest, signature, QuoteError, "quote")
    _check_header(info, TPM_ST_ATTEST_QUOTE, QuoteError, "quote")
    try:
        selection, pcr_digest = attest_quote_info(info)
    except TPMStructureError as exc:
        raise QuoteError(exc.message, code=exc.code) from exc
    ak.verify(sig, attest, QuoteError)
    _check_qualifying_data(info, qualifying_data, QuoteError, "quote")
    verified = None if pcrs is None else _check_pcrs(selection, pcrs, sig.hash_alg, pcr_digest)
    return VerifiedQuote(selection, pcr_digest, verified, sig, info)


def _check_pcrs(
    selection: PCRSelection, pcrs: PCRValues, alg: HashAlg, pcr_digest: bytes
) -> QuoteVerifiedPCRs:
    try:
        # map() over the bank's own dict: HashAlg hashes in Python, so look each bank up only once.
        chosen = tuple(tuple(map(pcrs[bank].__getitem__, indices)) for bank, indices in selection)
    except KeyError:
        chosen = ()
    # Accept exactly the signed selection: every quoted value present (no KeyError above) and no value
    # beyond them (equal totals, as dict keys are unique); sizes are checked per bank below.
    if len(chosen) != len(selection) or sum(map(len, pcrs.values())) != sum(map(len, chosen)):
        _explain_pcr_mismatch(selection, pcrs)
    parts = []
    for (bank, _), values in zip(selection, chosen, strict=True):
        joined, size = b"".join(values), bank.digest_size
        # Each value must be one digest long, or a different split of the same bytes would pass the PCR
        # digest check with wrong values. Total n*size with the shortest == size means all == size.
        if len(joined) != size * len(values) or (values and min(map(len, values)) != size):
            _explain_pcr_mismatch(selection, pcrs)
        parts.append(joined)
    # TPM2_Quote hashes the concatenated PCR values with the signing scheme's hash.
    if not hmac.compare_digest(alg.hash(b"".join(parts)), pcr_digest):
        raise QuoteError("PCR values do not reproduce the quoted PCR digest", code="pcr-digest-mismatch")
    return QuoteVerifiedPCRs(selection, chosen)


def _explain_pcr_mismatch(selection: PCRSelection, pcrs: PCRValues) -> None:
    """Raise the precise error for supplied PCR values that are not exactly the signed selection."""
    quoted = dict(selection)
    for bank, values in pcrs.items():
        extra = sorted(set(values) - set(quoted.get(bank, ())))
        if extra:
            name = bank.bank_name if isinstance(bank, HashAlg) else str(bank)
            raise QuoteError(f"{name} PCR(s) {extra} are not in the signed selection", code="pcr-not-quoted")
    for bank, indices in selection:
        values = pcrs.get(bank, {})
        for index in indices:
            value = values.get(index)
            if value is None:
                raise QuoteError(
                    f"no value supplied for quoted PCR {bank.bank_name}:{index}", code="pcr-missing"
                )
            if len(value) != bank.digest_size:
                raise QuoteError(
                    f"PCR {bank.bank_name}:{index} value is {len(value)} bytes, not {bank.digest_size}",
                    code="pcr-value-malformed",
                )
    raise AssertionError("unreachable: PCR values matched the selection")


def unverified_quote_selection(attest: bytes) -> PCRSelection:
    """Return the PCR selection a TPMS_ATTEST claims, to interpret a bare ``-F values`` PCR file.

    Untrusted: use it only to read a file; :func:`verify_quote` re-derives the selection after the
    signature has been checked.
    """
    try:
        info = unmarshal_attest(attest)
        if info.type != TPM_ST_ATTEST_QUOTE:
            raise QuoteError(f"attestation type 0x{info.type:04x} is not a quote", code="quote-wrong-type")
        return attest_quote_info(info)[0]
    except TPMStructureError as exc:
        raise QuoteError(exc.message, code="quote-attest-malformed") from exc


def verify_certify(
    ak: AKPublic,
    attest: bytes,
    signature: bytes | TPMT_SIGNATURE,
    certified_public: bytes,
    *,
    qualifying_data: bytes | None = None,
) -> VerifiedCertification:
    """Verify a TPM2_Certify by ``ak`` of the object whose TPM2B_PUBLIC/TPMT_PUBLIC is ``certified_public``.

    The certified name must equal the name computed from that public area. Raises :class:`CertifyError`.
    """
    info, sig = _decode(attest, signature, CertifyError, "certify")
    try:
        public = unmarshal_public(certified_public)
        expected_name = public_name(public)
    except TPMStructureError as exc:
        raise CertifyError(f"certified public area: {exc.message}", code="certify-public-malformed") from exc
    _check_header(info, TPM_ST_ATTEST_CERTIFY, CertifyError, "certify")
    ak.verify(sig, attest, CertifyError)
    if qualifying_data is not None:
        _check_qualifying_data(info, qualifying_data, CertifyError, "certify")
    name, qualified_name = attest_certify_info(info)
    if not hmac.compare_digest(name, expected_name):
        raise CertifyError(
            f"certified name {name.hex()} is not the name {expected_name.hex()} of the given public area",
            code="certify-name-mismatch",
        )
    return VerifiedCertification(name, qualified_name, public.marshaled, public.object_attributes, info)


def verify_creation(
    ak: AKPublic,
    attest: bytes,
    signature: bytes | TPMT_SIGNATURE,
    *,
    object_name: bytes | None = None,
    creation_data: bytes | None = None,
    qualifying_data: bytes | None = None,
) -> VerifiedCreation:
    """Verify a TPM_ST_ATTEST_CREATION by ``ak`` about ``object_name`` (default: the AK's own name).

    With ``creation_data`` (a marshalled TPMS_CREATION_DATA), its hash under the object's name algorithm
    must equal the attested creationHash. Raises :class:`CertifyError`.
    """
    expected_name = object_name if object_name is not None else ak.name
    if expected_name is None:
        raise CertifyError(
            "the AK was loaded without a TPM name; pass object_name", code="creation-name-unknown"
        )
    info, sig = _decode(attest, signature, CertifyError, "creation")
    _check_header(info, TPM_ST_ATTEST_CREATION, CertifyError, "creation")
    ak.verify(sig, attest, CertifyError)
    if qualifying_data is not None:
        _check_qualifying_data(info, qualifying_data, CertifyError, "creation")
    name, creation_hash = attest_creation_info(info)
    if not hmac.compare_digest(name, expected_name):
        raise CertifyError(
            f"attested object name {name.hex()} is not {expected_name.hex()}", code="creation-name-mismatch"
        )
    if creation_data is not None:
        _check_creation_data(name, creation_data, creation_hash)
    return VerifiedCreation(name, creation_hash, info)


def _check_creation_data(name: bytes, creation_data: bytes, creation_hash: bytes) -> None:
    try:
        unmarshal_exact(TPMS_CREATION_DATA, creation_data, "TPMS_CREATION_DATA")
        alg = name_hash_alg(name)
    except TPMStructureError as exc:
        raise CertifyError(exc.message, code="creation-data-malformed") from exc
    if not hmac.compare_digest(alg.hash(bytes(creation_data)), creation_hash):
        raise CertifyError(
            "creation data does not match the attested creationHash", code="creation-hash-mismatch"
        )
