"""TPM 2.0 structures: TPMS_ATTEST, TPMT_SIGNATURE and public areas, and attestation keys.

The structures a verifier receives are read natively (:mod:`secl.core.tpmwire`: a few microseconds each,
and errors that name the structure, field and offset); tpm2-pytss remains the oracle they are tested
against, and :func:`unmarshal_exact` still lets callers unmarshal any other structure with it. Nothing
here decides whether evidence is trustworthy: :class:`AttestInfo` is what the bytes claim (unverified),
and only :mod:`secl.core.quote` turns it into verified results.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from tpm2_pytss.types import TPM2B_PUBLIC, TPMS_ATTEST, TPMT_PUBLIC, TPMT_SIGNATURE

from secl.core.errors import EvidenceError, TPMStructureError
from secl.core.hashalg import HashAlg
from secl.core.tpmwire import (
    CertifyInfo,
    CreationInfo,
    QuoteInfo,
    RawAttest,
    TPMPublic,
    read_attest,
    read_public,
    read_public_area,
    read_signature,
)

# TCG constants (TPM 2.0 Library Part 2). Plain ints keep the hot path free of enum conversions.
TPM_GENERATED_VALUE = 0xFF544347
TPM_ST_ATTEST_CERTIFY = 0x8017
TPM_ST_ATTEST_QUOTE = 0x8018
TPM_ST_ATTEST_CREATION = 0x801A
TPM_ALG_RSA = 0x0001
TPM_ALG_ECC = 0x0023
TPM_ALG_NULL = 0x0010
TPM_ALG_RSASSA = 0x0014
TPM_ALG_RSAPSS = 0x0016
TPM_ALG_ECDSA = 0x0018
TPMA_OBJECT_RESTRICTED = 0x00010000
TPMA_OBJECT_SIGN_ENCRYPT = 0x00040000

SCHEME_NAMES = {TPM_ALG_RSASSA: "rsassa", TPM_ALG_RSAPSS: "rsapss", TPM_ALG_ECDSA: "ecdsa"}

PCRSelection = tuple[tuple[HashAlg, tuple[int, ...]], ...]
"""A PCR selection in TPM order: (bank, ascending PCR indices) per TPMS_PCR_SELECTION, in wire order."""

_T = TypeVar("_T", TPMS_ATTEST, TPMT_SIGNATURE, TPM2B_PUBLIC, TPMT_PUBLIC)
_B = TypeVar("_B", QuoteInfo, CertifyInfo, CreationInfo)


def unmarshal_exact(cls: type[_T], data: bytes, what: str) -> _T:
    """Unmarshal ``data`` as ``cls`` with tpm2-pytss; reject short, malformed or trailing bytes."""
    if type(data) is not bytes:  # the common case skips the slower isinstance checks
        if not isinstance(data, bytearray | memoryview):
            raise TPMStructureError(f"{what}: expected bytes, got {type(data).__name__}")
        data = bytes(data)
    try:
        obj, consumed = cls.unmarshal(data)
    except Exception as exc:  # tpm2-tss reports every decoding failure as TSS2_Exception
        raise TPMStructureError(f"{what}: cannot unmarshal {cls.__name__}: {exc}") from None
    if consumed != len(data):
        raise TPMStructureError(
            f"{what}: {len(data) - consumed} trailing byte(s) after {cls.__name__} of {consumed} bytes",
            code="tpm-structure-trailing-bytes",
        )
    return obj


AttestInfo = RawAttest
"""The header fields and body of a decoded TPMS_ATTEST: untrusted until a ``verify_*`` function checked its
signature."""


def unmarshal_attest(data: bytes) -> AttestInfo:
    """Decode a marshalled TPMS_ATTEST (as ``tpm2_quote -m`` writes it).

    A malformed or truncated structure raises :class:`TPMStructureError` naming the field and its offset.
    """
    return read_attest(_as_bytes(data, "TPMS_ATTEST"))


def _as_bytes(data: Any, what: str) -> bytes:
    if type(data) is bytes:  # the common case skips the slower isinstance checks
        return data
    if not isinstance(data, bytearray | memoryview):
        raise TPMStructureError(f"{what}: expected bytes, got {type(data).__name__}")
    return bytes(data)


def _body(attest: AttestInfo, kind: type[_B]) -> _B:
    body = attest.attested
    if not isinstance(body, kind):
        raise TPMStructureError(
            f"attestation of type 0x{attest.type:04x} carries no {kind.__name__}",
            code="tpm-structure-malformed",
        )
    return body


def attest_quote_info(attest: AttestInfo) -> tuple[PCRSelection, bytes]:
    """Return the (selection, pcrDigest) of a TPMS_QUOTE_INFO; the caller has checked the type."""
    quote = _body(attest, QuoteInfo)
    return _selection(quote.pcr_select), quote.pcr_digest


def attest_certify_info(attest: AttestInfo) -> tuple[bytes, bytes]:
    """Return the (name, qualifiedName) of a TPMS_CERTIFY_INFO."""
    info = _body(attest, CertifyInfo)
    return info.name, info.qualified_name


def attest_creation_info(attest: AttestInfo) -> tuple[bytes, bytes]:
    """Return the (objectName, creationHash) of a TPMS_CREATION_INFO."""
    info = _body(attest, CreationInfo)
    return info.object_name, info.creation_hash


def _selection(pcr_select: tuple[tuple[int, bytes], ...]) -> PCRSelection:
    banks = tuple(_bank_selection(alg, bitmap) for alg, bitmap in pcr_select)
    if len({bank for bank, _ in banks}) != len(banks):
        # A bank selected twice would make "bank -> indices" ambiguous; no TPM emits it.
        raise TPMStructureError("a PCR bank is selected twice", code="pcr-selection-invalid")
    return banks


@functools.lru_cache(maxsize=256)
def _bank_selection(alg: int, bitmap: bytes) -> tuple[HashAlg, tuple[int, ...]]:
    # Memoised: a verifier sees the same few selections over and over. Failures are never cached.
    bank = _HASH_BY_ID.get(alg)
    if bank is None:
        raise TPMStructureError(
            f"PCR selection names unsupported bank 0x{alg:04x}", code="pcr-bank-unsupported"
        ) from None
    return bank, bitmap_indices(bitmap)


def bitmap_indices(bitmap: bytes) -> tuple[int, ...]:
    """Return the PCR indices a TPMS_PCR_SELECTION bitmap selects, ascending (the TPM's digest order)."""
    # Bit i of octet n selects PCR 8n+i.
    return tuple(
        8 * n + bit for n, octet in enumerate(bitmap) if octet for bit in range(8) if octet >> bit & 1
    )


@dataclass(frozen=True, slots=True)
class TPMSignature:
    """A decoded TPMT_SIGNATURE: scheme, hash, and the signature in the form pyca verifies (ECDSA as DER)."""

    scheme: int
    hash_alg: HashAlg
    signature: bytes

    @property
    def scheme_name(self) -> str:
        return SCHEME_NAMES.get(self.scheme) or f"0x{self.scheme:04x}"


def unmarshal_signature(data: bytes | TPMT_SIGNATURE) -> TPMSignature:
    """Decode a marshalled TPMT_SIGNATURE (``tpm2_quote -s``, default format) or take a pytss object."""
    raw = data.marshal() if isinstance(data, TPMT_SIGNATURE) else _as_bytes(data, "TPMT_SIGNATURE")
    sig = read_signature(raw)
    hash_alg = _HASH_BY_ID.get(sig.hash_alg)
    if hash_alg is None:
        raise TPMStructureError(
            f"signature hash 0x{sig.hash_alg:04x} is not supported", code="signature-unsupported"
        )
    return TPMSignature(sig.scheme, hash_alg, sig.signature)


def unmarshal_public(data: bytes) -> TPMPublic:
    """Decode a TPM2B_PUBLIC (``tpm2_createak -u``) or a bare TPMT_PUBLIC (go-attestation), whichever it is."""
    return read_public(_as_bytes(data, "public area"))


def _native_public(public: TPMPublic | TPMT_PUBLIC) -> TPMPublic:
    # tpm2-pytss objects (the trust agent's, the Privacy CA's) are read through their marshalled bytes.
    return public if isinstance(public, TPMPublic) else read_public_area(public.marshal())


def public_name(public: TPMPublic | TPMT_PUBLIC) -> bytes:
    """Return the TPM name (nameAlg ‖ H(TPMT_PUBLIC)) of a public area."""
    return _native_public(public).name()


# Dict lookups instead of HashAlg(...) and isinstance on pyca's ABCs: both cost microseconds per quote.
_HASH_BY_ID: dict[int, HashAlg] = {int(alg): alg for alg in HashAlg}
_SIG_HASHES: dict[HashAlg, hashes.HashAlgorithm] = {alg: alg.cryptography_hash() for alg in HashAlg}
_PKCS1 = padding.PKCS1v15()
_PSS = {alg: padding.PSS(padding.MGF1(h), padding.PSS.AUTO) for alg, h in _SIG_HASHES.items()}
_ECDSA = {alg: ec.ECDSA(h) for alg, h in _SIG_HASHES.items()}

AKKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class AKPublic:
    """An attestation key, loaded once into a pyca key so each verification only does the math.

    ``public_area`` (marshalled TPMT_PUBLIC), ``name`` and the fixed scheme are known only when the key
    came as a TPM public area; a PEM key fixes no scheme and has no TPM name.
    """

    key: AKKey
    public_area: bytes | None = None
    name: bytes | None = None
    scheme: int | None = None
    scheme_hash: HashAlg | None = None
    is_ecc: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_ecc", isinstance(self.key, ec.EllipticCurvePublicKey))

    def pem(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, sig: TPMSignature, message: bytes, error: type[EvidenceError]) -> None:
        """Check ``sig`` over ``message``; raise ``error`` (with a ``signature-*`` code) if it does not hold."""
        if self.scheme is not None and (sig.scheme != self.scheme or sig.hash_alg != self.scheme_hash):
            assert self.scheme_hash is not None
            raise error(
                f"signature uses {sig.scheme_name}-{sig.hash_alg.bank_name} but the AK is fixed to "
                f"{SCHEME_NAMES.get(self.scheme, hex(self.scheme))}-{self.scheme_hash.bank_name}",
                code="signature-scheme-mismatch",
            )
        try:
            self._verify(sig, message, error)
        except InvalidSignature:
            raise error("signature does not verify with the AK", code="signature-invalid") from None
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise error(f"signature cannot be checked: {exc}", code="signature-invalid") from None

    def _verify(self, sig: TPMSignature, message: bytes, error: type[EvidenceError]) -> None:
        key: Any = self.key
        if sig.scheme == TPM_ALG_ECDSA:
            if not self.is_ecc:
                raise error("ECDSA signature but the AK is an RSA key", code="signature-key-mismatch")
            key.verify(sig.signature, message, _ECDSA[sig.hash_alg])
            return
        if self.is_ecc:
            raise error(
                f"{sig.scheme_name} signature but the AK is an ECC key", code="signature-key-mismatch"
            )
        pad = _PKCS1 if sig.scheme == TPM_ALG_RSASSA else _PSS[sig.hash_alg]
        key.verify(sig.signature, message, pad, _SIG_HASHES[sig.hash_alg])


def load_ak_public(data: bytes) -> AKPublic:
    """Load an AK from a TPM2B_PUBLIC or TPMT_PUBLIC, PEM or DER SubjectPublicKeyInfo, or an X.509
    certificate (PEM or DER, e.g. the AIK certificate a Privacy CA issued).

    A TPM public area must describe a restricted signing key: only such a key refuses to sign data that
    starts with TPM_GENERATED_VALUE, which is what makes its quotes mean anything.
    """
    data = _as_bytes(data, "AK")
    if data[:1] == b"\x00":  # a TPMT_PUBLIC's type, or a TPM2B_PUBLIC's size: both start with a zero octet
        return ak_from_public_area(read_public(data))
    if data.lstrip().startswith(b"-----BEGIN CERTIFICATE"):
        return AKPublic(_load_spki(_certificate_key, data))
    if data.lstrip().startswith(b"-----BEGIN"):
        return AKPublic(_load_spki(serialization.load_pem_public_key, data))
    if data[:1] == b"\x30":
        return AKPublic(_load_spki(_der_key, data))
    return ak_from_public_area(read_public(data))


def _certificate_key(data: bytes) -> Any:
    # An AIK certificate from a Privacy CA (SecL's "aik" field) carries the AK's SubjectPublicKeyInfo.
    return x509.load_pem_x509_certificate(data).public_key()


def _der_key(data: bytes) -> Any:
    try:
        return serialization.load_der_public_key(data)
    except ValueError:
        # Not a SubjectPublicKeyInfo: a DER certificate is the other SEQUENCE an operator may hold.
        return x509.load_der_x509_certificate(data).public_key()


def _load_spki(loader: Any, data: bytes) -> AKKey:
    try:
        key = loader(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise TPMStructureError(f"cannot load the AK public key: {exc}", code="ak-key-malformed") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise TPMStructureError(
            f"AK key type {type(key).__name__} is not RSA or ECC", code="ak-key-unsupported"
        )
    return key


def ak_from_public_area(public: TPMPublic | TPMT_PUBLIC) -> AKPublic:
    """Build an :class:`AKPublic` from a public area (read natively, or a tpm2-pytss object)."""
    area = _native_public(public)
    attributes = area.object_attributes
    needed = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT
    if attributes & needed != needed:
        raise TPMStructureError(
            f"AK attributes 0x{attributes:08x} do not describe a restricted signing key",
            code="ak-not-restricted-signing",
        )
    try:
        key = area.public_key()
    except TPMStructureError as exc:
        raise TPMStructureError(
            f"cannot use the AK public area: {exc.message}", code="ak-key-unsupported"
        ) from None
    scheme = area.parameters.scheme
    fixed, fixed_hash = None, None
    if scheme.scheme != TPM_ALG_NULL:
        fixed = scheme.scheme
        fixed_hash = _HASH_BY_ID.get(scheme.hash_alg) if scheme.hash_alg is not None else None
        if fixed_hash is None:
            raise TPMStructureError("AK scheme hash is not supported", code="ak-key-unsupported")
    return AKPublic(key, area.marshaled, area.name(), fixed, fixed_hash)


def name_hash_alg(name: bytes) -> HashAlg:
    """Return the nameAlg of a TPM name (its first two octets)."""
    if len(name) < 2:
        raise TPMStructureError("TPM name is too short", code="tpm-name-malformed")
    try:
        return HashAlg(int.from_bytes(name[:2], "big"))
    except ValueError:
        raise TPMStructureError("TPM name uses an unsupported hash", code="tpm-name-malformed") from None
