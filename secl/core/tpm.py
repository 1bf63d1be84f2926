"""TPM 2.0 structures: TPMS_ATTEST, TPMT_SIGNATURE and public areas, decoded with tpm2-pytss.

tpm2-pytss (tpm2-tss's ``Tss2_MU_*``) does all unmarshalling; this module only checks that every byte was
consumed, turns any failure into :class:`TPMStructureError`, and reads the decoded fields into small frozen
dataclasses. Nothing here decides whether evidence is trustworthy: :class:`AttestInfo` is what the
bytes claim (unverified), and only :mod:`secl.core.quote` turns it into verified results.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from tpm2_pytss import ffi as _ffi
from tpm2_pytss.types import TPM2B_PUBLIC, TPMS_ATTEST, TPMT_PUBLIC, TPMT_SIGNATURE

from secl.core.errors import EvidenceError, TPMStructureError
from secl.core.hashalg import HashAlg

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


def _c(obj: Any) -> Any:
    """Return the C struct tpm2-tss unmarshalled into.

    tpm2-pytss wraps every attribute access in a fresh Python object (about 20 µs per field, measured with
    bench/quote_verify.py), which alone would cost more than the RSA verification of a quote. The C struct
    holds the very same decoded values, so the hot path reads it directly; tests/test_quote.py pins that
    both views agree.
    """
    return obj._cdata


def _tpm2b(field: Any, buffer_name: str = "buffer") -> bytes:
    # ffi.buffer copies in one memcpy; slicing the cdata array would convert byte by byte (~7 µs for an
    # RSA signature). tpm2-tss has already bounded ``size`` by the array length while unmarshalling.
    return _ffi.buffer(getattr(field, buffer_name), field.size)[:]


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


@dataclass(frozen=True, slots=True)
class AttestInfo:
    """The header fields of a decoded TPMS_ATTEST: untrusted until a ``verify_*`` function checked its signature."""

    magic: int
    type: int
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    structure: TPMS_ATTEST


def unmarshal_attest(data: bytes) -> AttestInfo:
    """Decode a marshalled TPMS_ATTEST (as ``tpm2_quote -m`` writes it)."""
    attest = unmarshal_exact(TPMS_ATTEST, data, "TPMS_ATTEST")
    c = _c(attest)
    clock = c.clockInfo
    return AttestInfo(
        magic=c.magic,
        type=c.type,
        qualified_signer=_tpm2b(c.qualifiedSigner, "name"),
        extra_data=_tpm2b(c.extraData),
        clock=clock.clock,
        reset_count=clock.resetCount,
        restart_count=clock.restartCount,
        safe=bool(clock.safe),
        firmware_version=c.firmwareVersion,
        structure=attest,
    )


def attest_quote_info(attest: AttestInfo) -> tuple[PCRSelection, bytes]:
    """Return the (selection, pcrDigest) of a TPMS_QUOTE_INFO; the caller has checked the type."""
    quote = _c(attest.structure).attested.quote
    return _selection(quote.pcrSelect), _tpm2b(quote.pcrDigest)


def attest_certify_info(attest: AttestInfo) -> tuple[bytes, bytes]:
    """Return the (name, qualifiedName) of a TPMS_CERTIFY_INFO."""
    info = _c(attest.structure).attested.certify
    return _tpm2b(info.name, "name"), _tpm2b(info.qualifiedName, "name")


def attest_creation_info(attest: AttestInfo) -> tuple[bytes, bytes]:
    """Return the (objectName, creationHash) of a TPMS_CREATION_INFO."""
    info = _c(attest.structure).attested.creation
    return _tpm2b(info.objectName, "name"), _tpm2b(info.creationHash)


def _selection(pcr_select: Any) -> PCRSelection:
    sels = pcr_select.pcrSelections
    banks = tuple(
        _bank_selection(sel.hash, _ffi.buffer(sel.pcrSelect, sel.sizeofSelect)[:])
        for sel in sels[0 : pcr_select.count]
    )
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
    sig = (
        data if isinstance(data, TPMT_SIGNATURE) else unmarshal_exact(TPMT_SIGNATURE, data, "TPMT_SIGNATURE")
    )
    c = _c(sig)
    scheme = c.sigAlg
    if scheme in (TPM_ALG_RSASSA, TPM_ALG_RSAPSS):
        body = c.signature.rsassa  # RSASSA and RSAPSS share TPMS_SIGNATURE_RSA.
        raw = _tpm2b(body.sig)
    elif scheme == TPM_ALG_ECDSA:
        body = c.signature.ecdsa
        r, s = (int.from_bytes(_tpm2b(p), "big") for p in (body.signatureR, body.signatureS))
        raw = encode_dss_signature(r, s)
    else:
        raise TPMStructureError(
            f"signature scheme 0x{scheme:04x} is not supported", code="signature-unsupported"
        )
    hash_alg = _HASH_BY_ID.get(body.hash)
    if hash_alg is None:
        raise TPMStructureError(
            f"signature hash 0x{body.hash:04x} is not supported", code="signature-unsupported"
        )
    return TPMSignature(scheme, hash_alg, raw)


def unmarshal_public(data: bytes) -> TPMT_PUBLIC:
    """Decode a TPM2B_PUBLIC (``tpm2_createak -u``) or a bare TPMT_PUBLIC (go-attestation), whichever it is."""
    data = bytes(data)
    if len(data) >= 2 and int.from_bytes(data[:2], "big") == len(data) - 2:
        return unmarshal_exact(TPM2B_PUBLIC, data, "TPM2B_PUBLIC").publicArea
    return unmarshal_exact(TPMT_PUBLIC, data, "TPMT_PUBLIC")


def public_name(public: TPMT_PUBLIC) -> bytes:
    """Return the TPM name (nameAlg ‖ H(TPMT_PUBLIC)) of a public area."""
    try:
        return bytes(public.get_name())
    except Exception as exc:
        raise TPMStructureError(
            f"cannot compute the object name: {exc}", code="public-name-unsupported"
        ) from None


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
    """Load an AK from PEM/DER SubjectPublicKeyInfo, a PEM AIK certificate, a TPM2B_PUBLIC or a TPMT_PUBLIC.

    A TPM public area must describe a restricted signing key: only such a key refuses to sign data that
    starts with TPM_GENERATED_VALUE, which is what makes its quotes mean anything.
    """
    data = bytes(data)
    if data.lstrip().startswith(b"-----BEGIN CERTIFICATE"):
        return AKPublic(_load_spki(_certificate_key, data))
    if data.lstrip().startswith(b"-----BEGIN"):
        return AKPublic(_load_spki(serialization.load_pem_public_key, data))
    if data[:1] == b"\x30":
        return AKPublic(_load_spki(serialization.load_der_public_key, data))
    return ak_from_public_area(unmarshal_public(data))


def _certificate_key(data: bytes) -> Any:
    # An AIK certificate from a Privacy CA (SecL's "aik" field) carries the AK's SubjectPublicKeyInfo.
    return x509.load_pem_x509_certificate(data).public_key()


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


def ak_from_public_area(public: TPMT_PUBLIC) -> AKPublic:
    """Build an :class:`AKPublic` from a decoded public area."""
    c = _c(public)
    attributes = int(c.objectAttributes)
    needed = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT
    if attributes & needed != needed:
        raise TPMStructureError(
            f"AK attributes 0x{attributes:08x} do not describe a restricted signing key",
            code="ak-not-restricted-signing",
        )
    if c.type == TPM_ALG_RSA:
        scheme = c.parameters.rsaDetail.scheme
    elif c.type == TPM_ALG_ECC:
        scheme = c.parameters.eccDetail.scheme
    else:
        raise TPMStructureError(f"AK type 0x{c.type:04x} is not RSA or ECC", code="ak-key-unsupported")
    try:
        pem = public.to_pem()
    except Exception as exc:
        raise TPMStructureError(
            f"cannot convert the AK public area: {exc}", code="ak-key-unsupported"
        ) from None
    key = _load_spki(serialization.load_pem_public_key, pem)
    fixed, fixed_hash = None, None
    if scheme.scheme != TPM_ALG_NULL:
        fixed = scheme.scheme
        try:
            fixed_hash = HashAlg(scheme.details.anySig.hashAlg)
        except ValueError:
            raise TPMStructureError("AK scheme hash is not supported", code="ak-key-unsupported") from None
    return AKPublic(key, public.marshal(), public_name(public), fixed, fixed_hash)


def name_hash_alg(name: bytes) -> HashAlg:
    """Return the nameAlg of a TPM name (its first two octets)."""
    if len(name) < 2:
        raise TPMStructureError("TPM name is too short", code="tpm-name-malformed")
    try:
        return HashAlg(int.from_bytes(name[:2], "big"))
    except ValueError:
        raise TPMStructureError("TPM name uses an unsupported hash", code="tpm-name-malformed") from None
