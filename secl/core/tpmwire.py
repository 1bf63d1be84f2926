"""Native readers for the marshalled TPM 2.0 structures a verifier receives: TPMT_PUBLIC, TPMS_ATTEST and
TPMT_SIGNATURE (TPM 2.0 Library Part 2, big-endian, every TPM2B a 16-bit size then its bytes).

Why not tpm2-pytss: its unmarshalling is correct but costs ~140 µs to turn an RSA AK's public area into a
key (mostly Python wrappers around each C field, and a PEM round trip), several times the signature check
it serves; and a failure says only "mu:A buffer isn't large enough". These readers take a few
microseconds, and every refusal names the structure, the field and the offset. tpm2-pytss stays the oracle:
tests/test_tpmwire.py checks that both read the same values from every AK and quote of the corpus and from
thousands of generated structures, and that they refuse the same truncations.

The readers accept what the TPM's own unmarshalling accepts (selector values the TCG defines; buffers no
larger than their TPM2B can hold) and nothing trailing. They do not judge: a public area with any
attributes parses, and what an AK or a binding key must look like is decided by the caller
(:func:`secl.core.tpm.ak_from_public_area`). Two deliberate differences from tpm2-tss: a TPM2B_PUBLIC
whose size field disagrees with the public area inside is refused (tpm2-tss ignores the size), and
KEYEDHASH and SYMCIPHER public areas are refused as unsupported, since no verifier here needs them.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from secl.core.errors import TPMStructureError
from secl.core.hashalg import HashAlg

__all__ = [
    "ALG_ECC",
    "ALG_NULL",
    "ALG_RSA",
    "AttestBody",
    "CertifyInfo",
    "CreationInfo",
    "ECCParameters",
    "ECCPoint",
    "ObjectAttributes",
    "OtherAttestInfo",
    "QuoteInfo",
    "RSAParameters",
    "RawAttest",
    "RawSignature",
    "Scheme",
    "SymmetricDefinition",
    "TPMPublic",
    "read_attest",
    "read_public",
    "read_public_area",
    "read_signature",
]

ALG_RSA = 0x0001
ALG_ECC = 0x0023
ALG_KEYEDHASH = 0x0008
ALG_SYMCIPHER = 0x0025
ALG_NULL = 0x0010
ALG_XOR = 0x000A
ALG_HMAC = 0x0005
ALG_RSASSA, ALG_RSAES, ALG_RSAPSS, ALG_OAEP = 0x0014, 0x0015, 0x0016, 0x0017
ALG_ECDSA, ALG_ECDH, ALG_ECDAA, ALG_SM2, ALG_ECSCHNORR, ALG_ECMQV = (
    0x0018,
    0x0019,
    0x001A,
    0x001B,
    0x001C,
    0x001D,
)

# TPMT_SYM_DEF_OBJECT: block ciphers carry keyBits and mode; XOR carries a hash and no mode.
_BLOCK_CIPHERS = frozenset({0x0006, 0x0013, 0x0026})  # AES, SM4, CAMELLIA
# TPMU_ASYM_SCHEME: which schemes carry a hash (and ECDAA a count); RSAES carries nothing.
_HASHED_SCHEMES = frozenset(
    {ALG_RSASSA, ALG_RSAPSS, ALG_OAEP, ALG_ECDSA, ALG_ECDH, ALG_SM2, ALG_ECSCHNORR, ALG_ECMQV}
)
# TPMU_KDF_SCHEME: MGF1, KDF1_SP800_56A, KDF2, KDF1_SP800_108, each with a hash.
_KDF_SCHEMES = frozenset({0x0007, 0x0020, 0x0021, 0x0022})
# Largest TPM2B payloads (tpm2-tss's sizeof, which is what a TPM may send): TPMU_HA, TPMU_NAME, RSA and ECC.
_MAX_DIGEST, _MAX_NAME, _MAX_RSA, _MAX_ECC, _MAX_NV = 64, 68, 512, 128, 2048
_MAX_PCR_BANKS, _MAX_PCR_SELECT = 16, 4

TPM_ST_ATTEST_NV, TPM_ST_ATTEST_COMMAND_AUDIT, TPM_ST_ATTEST_SESSION_AUDIT = 0x8014, 0x8015, 0x8016
TPM_ST_ATTEST_CERTIFY, TPM_ST_ATTEST_QUOTE, TPM_ST_ATTEST_TIME = 0x8017, 0x8018, 0x8019
TPM_ST_ATTEST_CREATION, TPM_ST_ATTEST_NV_DIGEST = 0x801A, 0x801C

_CURVES: dict[int, tuple[ec.EllipticCurve, int]] = {
    0x0001: (ec.SECP192R1(), 24),
    0x0002: (ec.SECP224R1(), 28),
    0x0003: (ec.SECP256R1(), 32),
    0x0004: (ec.SECP384R1(), 48),
    0x0005: (ec.SECP521R1(), 66),
}
_HASH_BY_ID: dict[int, HashAlg] = {int(alg): alg for alg in HashAlg}


class ObjectAttributes(enum.IntFlag):
    """TPMA_OBJECT: the attributes of a TPM object, named as in the specification."""

    FIXED_TPM = 0x00000002
    ST_CLEAR = 0x00000004
    FIXED_PARENT = 0x00000010
    SENSITIVE_DATA_ORIGIN = 0x00000020
    USER_WITH_AUTH = 0x00000040
    ADMIN_WITH_POLICY = 0x00000080
    NO_DA = 0x00000400
    ENCRYPTED_DUPLICATION = 0x00000800
    RESTRICTED = 0x00010000
    DECRYPT = 0x00020000
    SIGN_ENCRYPT = 0x00040000
    X509_SIGN = 0x00080000


class _Reader:
    """Bounds-checked big-endian reads; a short read names the structure, the field and the offset."""

    __slots__ = ("data", "end", "pos", "structure")

    def __init__(self, data: bytes, structure: str, pos: int = 0) -> None:
        self.data, self.structure, self.pos, self.end = data, structure, pos, len(data)

    def truncated(self, field: str, need: int) -> NoReturn:
        left = self.end - self.pos
        raise TPMStructureError(
            f"{self.structure} is truncated at offset {self.pos}: {field} needs {need} byte(s), "
            f"{max(left, 0)} left",
            code="tpm-structure-truncated",
        )

    def malformed(self, field: str, at: int, why: str) -> NoReturn:
        raise TPMStructureError(f"{self.structure}: {field} at offset {at} {why}")

    def u8(self, field: str) -> int:
        pos = self.pos
        if pos >= self.end:
            self.truncated(field, 1)
        self.pos = pos + 1
        return self.data[pos]

    def u16(self, field: str) -> int:
        pos = self.pos
        if pos + 2 > self.end:
            self.truncated(field, 2)
        self.pos = pos + 2
        return int.from_bytes(self.data[pos : pos + 2], "big")

    def u32(self, field: str) -> int:
        pos = self.pos
        if pos + 4 > self.end:
            self.truncated(field, 4)
        self.pos = pos + 4
        return int.from_bytes(self.data[pos : pos + 4], "big")

    def u64(self, field: str) -> int:
        pos = self.pos
        if pos + 8 > self.end:
            self.truncated(field, 8)
        self.pos = pos + 8
        return int.from_bytes(self.data[pos : pos + 8], "big")

    def take(self, size: int, field: str) -> bytes:
        pos = self.pos
        if pos + size > self.end:
            self.truncated(field, size)
        self.pos = pos + size
        return self.data[pos : pos + size]

    def tpm2b(self, field: str, maximum: int) -> bytes:
        at = self.pos
        size = self.u16(f"{field}.size")
        if size > maximum:
            self.malformed(field, at, f"claims {size} bytes; it holds at most {maximum}")
        return self.take(size, f"{field}.buffer")

    def finish(self) -> None:
        if self.pos != self.end:
            raise TPMStructureError(
                f"{self.end - self.pos} trailing byte(s) after {self.structure} of {self.pos} bytes",
                code="tpm-structure-trailing-bytes",
            )


# --- public areas ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SymmetricDefinition:
    """TPMT_SYM_DEF_OBJECT: NULL for keys that protect nothing (AKs); a block cipher's key bits and mode."""

    algorithm: int
    key_bits: int | None = None  # for XOR: the hash algorithm
    mode: int | None = None


@dataclass(frozen=True, slots=True)
class Scheme:
    """A TPMT_*_SCHEME: the scheme (TPM_ALG_ID, NULL for none), its hash and, for ECDAA, its count."""

    scheme: int
    hash_alg: int | None = None
    count: int | None = None


_NULL_SYMMETRIC = SymmetricDefinition(ALG_NULL)
_NULL_SCHEME = Scheme(ALG_NULL)


@dataclass(frozen=True, slots=True)
class RSAParameters:
    """TPMS_RSA_PARMS. ``exponent`` is as marshalled: 0 means the default 65537 (:attr:`public_exponent`)."""

    symmetric: SymmetricDefinition
    scheme: Scheme
    key_bits: int
    exponent: int

    @property
    def public_exponent(self) -> int:
        return self.exponent or 65537


@dataclass(frozen=True, slots=True)
class ECCParameters:
    """TPMS_ECC_PARMS: symmetric definition, signing scheme, TPM_ECC_CURVE and KDF scheme."""

    symmetric: SymmetricDefinition
    scheme: Scheme
    curve: int
    kdf: Scheme


@dataclass(frozen=True, slots=True)
class ECCPoint:
    """TPMS_ECC_POINT: the public point's coordinates, as the TPM sent them (big-endian)."""

    x: bytes
    y: bytes


@dataclass(frozen=True, slots=True)
class TPMPublic:
    """A TPMT_PUBLIC of an RSA or ECC key, and the exact bytes it was read from.

    ``unique`` is the RSA modulus (bytes) or the ECC point. Nothing here is trusted: the TPM vouches for a
    public area only through a name it signed (TPM2_Certify, creation data) or a credential it activated.
    """

    type: int
    name_alg: int
    object_attributes: int
    auth_policy: bytes
    parameters: RSAParameters | ECCParameters
    unique: bytes | ECCPoint
    marshaled: bytes

    @property
    def attributes(self) -> ObjectAttributes:
        """The object attributes as named flags (``ObjectAttributes.FIXED_TPM in public.attributes``)."""
        return ObjectAttributes(self.object_attributes)

    @property
    def is_rsa(self) -> bool:
        return self.type == ALG_RSA

    @property
    def is_ecc(self) -> bool:
        return self.type == ALG_ECC

    def name(self) -> bytes:
        """The TPM Name: nameAlg ‖ H_nameAlg(TPMT_PUBLIC). Raises for a nameAlg the core cannot compute."""
        alg = _HASH_BY_ID.get(self.name_alg)
        if alg is None:
            raise TPMStructureError(
                f"cannot compute the name: nameAlg 0x{self.name_alg:04x} is not a supported hash",
                code="public-name-unsupported",
            )
        return self.name_alg.to_bytes(2, "big") + alg.hash(self.marshaled)

    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        """The key as a pyca object; :class:`TPMStructureError` (``public-key-unsupported``) if it is not one."""
        params = self.parameters
        if isinstance(params, RSAParameters):
            assert isinstance(self.unique, bytes)
            modulus = self.unique
            # The TPM makes a modulus of exactly keyBits; a shorter one under a larger claim is forged or
            # corrupt, and a caller checking "keyBits >= 2048" must be able to rely on it.
            if not modulus or len(modulus) * 8 != params.key_bits or not modulus[0] & 0x80:
                raise TPMStructureError(
                    f"RSA modulus of {len(modulus)} bytes does not have the {params.key_bits} bits keyBits says",
                    code="public-key-unsupported",
                )
            try:
                return rsa.RSAPublicNumbers(
                    params.public_exponent, int.from_bytes(modulus, "big")
                ).public_key()
            except ValueError as exc:
                raise TPMStructureError(
                    f"RSA key cannot be used: {exc}", code="public-key-unsupported"
                ) from None
        assert isinstance(self.unique, ECCPoint)
        found = _CURVES.get(params.curve)
        if found is None:
            raise TPMStructureError(
                f"ECC curve 0x{params.curve:04x} is not supported", code="public-key-unsupported"
            )
        curve, size = found
        x, y = self.unique.x, self.unique.y
        if len(x) > size or len(y) > size:
            raise TPMStructureError(
                f"ECC point coordinates of {len(x)}/{len(y)} bytes are too long for {curve.name}",
                code="public-key-unsupported",
            )
        try:
            point = b"\x04" + x.rjust(size, b"\0") + y.rjust(size, b"\0")
            return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        except ValueError as exc:
            raise TPMStructureError(f"ECC key cannot be used: {exc}", code="public-key-unsupported") from None


def read_public(data: bytes) -> TPMPublic:
    """Read a TPM2B_PUBLIC (``tpm2_createak -u``) or a bare TPMT_PUBLIC (go-attestation), whichever it is.

    A TPMT_PUBLIC starts with its type and then a nameAlg, a hash; a TPM2B_PUBLIC with a size and then the
    type. So the second 16-bit word tells them apart, and a TPM2B_PUBLIC's size must be exactly what follows.
    """
    if len(data) < 4:  # too short to tell which, and too short for either
        raise TPMStructureError(
            f"public area is truncated: {len(data)} byte(s) hold neither a TPMT_PUBLIC nor a TPM2B_PUBLIC",
            code="tpm-structure-truncated",
        )
    if int.from_bytes(data[2:4], "big") not in _PUBLIC_TYPES:
        return read_public_area(data)
    size = int.from_bytes(data[:2], "big")
    if size > len(data) - 2:
        raise TPMStructureError(
            f"TPM2B_PUBLIC is truncated: its size says {size} bytes, {len(data) - 2} follow",
            code="tpm-structure-truncated",
        )
    if size < len(data) - 2:
        raise TPMStructureError(
            f"{len(data) - 2 - size} trailing byte(s) after TPM2B_PUBLIC of {size + 2} bytes",
            code="tpm-structure-trailing-bytes",
        )
    area = data[2:]
    return _fast_public(area) or _read_tpmt_public(_Reader(data, "TPM2B_PUBLIC", 2), area)


def read_public_area(data: bytes) -> TPMPublic:
    """Read a marshalled TPMT_PUBLIC, every byte of it."""
    return _fast_public(data) or _read_tpmt_public(_Reader(data, "TPMT_PUBLIC"), data)


_PUBLIC_TYPES = (ALG_RSA, ALG_ECC, ALG_KEYEDHASH, ALG_SYMCIPHER)
_PUBLIC_HEAD = struct.Struct(">HHIH")  # type, nameAlg, objectAttributes, authPolicy.size
_U16 = struct.Struct(">H")
_TWO_U16 = struct.Struct(">HH")
_THREE_U16 = struct.Struct(">HHH")
_RSA_TAIL = struct.Struct(">HIH")  # keyBits, exponent, unique.size
# The schemes keys are made with, built once: most public areas share one of them.
_COMMON_SCHEMES = {(s, int(h)): Scheme(s, int(h)) for s in _HASHED_SCHEMES for h in HashAlg}


def _fast_public(data: bytes) -> TPMPublic | None:
    """The shape of nearly every AK and binding key (no symmetric, no KDF, a hashed or no scheme), in a few
    unpacks; None for any other shape and for anything wrong, which :func:`_read_tpmt_public` then reads
    field by field (and explains). tests/test_tpmwire.py checks that both readers agree."""
    try:
        kind, name_alg, attributes, size = _PUBLIC_HEAD.unpack_from(data, 0)
        pos = 10 + size
        policy = data[10:pos]
        symmetric, scheme_alg = _TWO_U16.unpack_from(data, pos)
        pos += 4
        if size > _MAX_DIGEST or symmetric != ALG_NULL:
            return None
        scheme = _NULL_SCHEME
        if scheme_alg != ALG_NULL:
            found = _COMMON_SCHEMES.get((scheme_alg, _U16.unpack_from(data, pos)[0]))
            pos += 2
            if found is None:
                return None
            scheme = found
        parameters: RSAParameters | ECCParameters
        unique: bytes | ECCPoint
        if kind == ALG_RSA:
            key_bits, exponent, size = _RSA_TAIL.unpack_from(data, pos)
            pos += 8
            if size > _MAX_RSA:
                return None
            parameters = RSAParameters(_NULL_SYMMETRIC, scheme, key_bits, exponent)
            unique = data[pos : pos + size]
            pos += size
        elif kind == ALG_ECC:
            curve, kdf, size = _THREE_U16.unpack_from(data, pos)
            x = data[pos + 6 : pos + 6 + size]
            pos += 6 + size
            (y_size,) = _U16.unpack_from(data, pos)
            y = data[pos + 2 : pos + 2 + y_size]
            pos += 2 + y_size
            if kdf != ALG_NULL or size > _MAX_ECC or y_size > _MAX_ECC:
                return None
            parameters = ECCParameters(_NULL_SYMMETRIC, scheme, curve, _NULL_SCHEME)
            unique = ECCPoint(x, y)
        else:
            return None
    except struct.error:  # ran past the end: the careful reader says where
        return None
    if pos != len(data):
        return None
    return TPMPublic(kind, name_alg, attributes, policy, parameters, unique, data)


def _read_tpmt_public(r: _Reader, area: bytes) -> TPMPublic:
    if not area:
        r.truncated("TPMT_PUBLIC.type", 2)
    at = r.pos
    kind = r.u16("TPMT_PUBLIC.type")
    if kind not in (ALG_RSA, ALG_ECC):
        if kind in (ALG_KEYEDHASH, ALG_SYMCIPHER):
            raise TPMStructureError(
                f"{r.structure}: public area of type 0x{kind:04x} (KEYEDHASH or SYMCIPHER) is not supported",
                code="public-type-unsupported",
            )
        r.malformed("TPMT_PUBLIC.type", at, f"is 0x{kind:04x}, not a public key type")
    name_alg = r.u16("TPMT_PUBLIC.nameAlg")
    attributes = r.u32("TPMT_PUBLIC.objectAttributes")
    policy = r.tpm2b("TPMT_PUBLIC.authPolicy", _MAX_DIGEST)
    symmetric = _symmetric(r, "TPMT_PUBLIC.parameters.symDetail")
    scheme = _scheme(r, "TPMT_PUBLIC.parameters.scheme")
    parameters: RSAParameters | ECCParameters
    unique: bytes | ECCPoint
    if kind == ALG_RSA:
        parameters = RSAParameters(
            symmetric, scheme, r.u16("TPMS_RSA_PARMS.keyBits"), r.u32("TPMS_RSA_PARMS.exponent")
        )
        unique = r.tpm2b("TPMT_PUBLIC.unique.rsa", _MAX_RSA)
    else:
        curve = r.u16("TPMS_ECC_PARMS.curveID")
        parameters = ECCParameters(symmetric, scheme, curve, _kdf(r))
        unique = ECCPoint(
            r.tpm2b("TPMT_PUBLIC.unique.ecc.x", _MAX_ECC), r.tpm2b("TPMT_PUBLIC.unique.ecc.y", _MAX_ECC)
        )
    r.finish()
    return TPMPublic(kind, name_alg, attributes, policy, parameters, unique, area)


def _symmetric(r: _Reader, field: str) -> SymmetricDefinition:
    at = r.pos
    algorithm = r.u16(f"{field}.algorithm")
    if algorithm == ALG_NULL:
        return _NULL_SYMMETRIC
    if algorithm in _BLOCK_CIPHERS:
        return SymmetricDefinition(algorithm, r.u16(f"{field}.keyBits"), r.u16(f"{field}.mode"))
    if algorithm == ALG_XOR:
        return SymmetricDefinition(algorithm, r.u16(f"{field}.keyBits.exclusiveOr"))
    r.malformed(f"{field}.algorithm", at, f"is 0x{algorithm:04x}, not a symmetric algorithm")


def _scheme(r: _Reader, field: str) -> Scheme:
    at = r.pos
    scheme = r.u16(f"{field}.scheme")
    if scheme == ALG_NULL:
        return _NULL_SCHEME
    if scheme in _HASHED_SCHEMES:
        return Scheme(scheme, r.u16(f"{field}.details.hashAlg"))
    if scheme == ALG_ECDAA:
        return Scheme(scheme, r.u16(f"{field}.details.hashAlg"), r.u16(f"{field}.details.count"))
    if scheme == ALG_RSAES:
        return Scheme(scheme)
    r.malformed(f"{field}.scheme", at, f"is 0x{scheme:04x}, not an asymmetric scheme")


def _kdf(r: _Reader) -> Scheme:
    at = r.pos
    scheme = r.u16("TPMS_ECC_PARMS.kdf.scheme")
    if scheme == ALG_NULL:
        return _NULL_SCHEME
    if scheme in _KDF_SCHEMES:
        return Scheme(scheme, r.u16("TPMS_ECC_PARMS.kdf.details.hashAlg"))
    r.malformed("TPMS_ECC_PARMS.kdf.scheme", at, f"is 0x{scheme:04x}, not a KDF scheme")


# --- attestations --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuoteInfo:
    """TPMS_QUOTE_INFO as sent: (hash, select bitmap) per TPMS_PCR_SELECTION, then the PCR digest."""

    pcr_select: tuple[tuple[int, bytes], ...]
    pcr_digest: bytes


@dataclass(frozen=True, slots=True)
class CertifyInfo:
    """TPMS_CERTIFY_INFO: the certified object's name and qualified name."""

    name: bytes
    qualified_name: bytes


@dataclass(frozen=True, slots=True)
class CreationInfo:
    """TPMS_CREATION_INFO: the created object's name and the hash of its creation data."""

    object_name: bytes
    creation_hash: bytes


@dataclass(frozen=True, slots=True)
class OtherAttestInfo:
    """The body of an attestation type no verifier here checks (NV, audit, time), kept as its bytes."""

    raw: bytes


AttestBody = QuoteInfo | CertifyInfo | CreationInfo | OtherAttestInfo


@dataclass(frozen=True, slots=True)
class RawAttest:
    """The fields of a TPMS_ATTEST as read: what the bytes claim, untrusted until a ``verify_*`` function
    (:mod:`secl.core.quote`) has checked its signature."""

    magic: int
    type: int
    qualified_signer: bytes
    extra_data: bytes
    clock: int
    reset_count: int
    restart_count: int
    safe: bool
    firmware_version: int
    attested: AttestBody


_ATTEST_HEAD = struct.Struct(">IHH")  # magic, type, qualifiedSigner.size
_CLOCK_FIRMWARE = struct.Struct(">QIIBQ")  # TPMS_CLOCK_INFO, firmwareVersion
_U32 = struct.Struct(">I")
_PCR_SELECT_HEAD = struct.Struct(">HB")


def read_attest(data: bytes) -> RawAttest:
    """Read a marshalled TPMS_ATTEST (``tpm2_quote -m``), every byte of it."""
    return _fast_quote(data) or _read_attest(data)


def _fast_quote(data: bytes) -> RawAttest | None:
    """A well-formed quote in a few unpacks; None for anything else, which :func:`_read_attest` then reads
    field by field (and explains)."""
    try:
        magic, kind, size = _ATTEST_HEAD.unpack_from(data, 0)
        pos = 8 + size
        signer = data[8:pos]
        (extra_size,) = _U16.unpack_from(data, pos)
        extra = data[pos + 2 : pos + 2 + extra_size]
        pos += 2 + extra_size
        clock, resets, restarts, safe, firmware = _CLOCK_FIRMWARE.unpack_from(data, pos)
        (count,) = _U32.unpack_from(data, pos + 25)
        pos += 29
        if (
            kind != TPM_ST_ATTEST_QUOTE
            or size > _MAX_NAME
            or extra_size > _MAX_DIGEST
            or count > _MAX_PCR_BANKS
        ):
            return None
        banks = []
        for _ in range(count):
            alg, select_size = _PCR_SELECT_HEAD.unpack_from(data, pos)
            if select_size > _MAX_PCR_SELECT:
                return None
            banks.append((alg, data[pos + 3 : pos + 3 + select_size]))
            pos += 3 + select_size
        (digest_size,) = _U16.unpack_from(data, pos)
        digest = data[pos + 2 : pos + 2 + digest_size]
        pos += 2 + digest_size
    except struct.error:  # ran past the end: the careful reader says where
        return None
    if pos != len(data) or digest_size > _MAX_DIGEST:
        return None
    quote = QuoteInfo(tuple(banks), digest)
    return RawAttest(magic, kind, signer, extra, clock, resets, restarts, safe != 0, firmware, quote)


def _read_attest(data: bytes) -> RawAttest:
    r = _Reader(data, "TPMS_ATTEST")
    magic = r.u32("TPMS_ATTEST.magic")
    at = r.pos
    kind = r.u16("TPMS_ATTEST.type")
    signer = r.tpm2b("TPMS_ATTEST.qualifiedSigner", _MAX_NAME)
    extra = r.tpm2b("TPMS_ATTEST.extraData", _MAX_DIGEST)
    clock = r.u64("TPMS_CLOCK_INFO.clock")
    reset_count = r.u32("TPMS_CLOCK_INFO.resetCount")
    restart_count = r.u32("TPMS_CLOCK_INFO.restartCount")
    safe = r.u8("TPMS_CLOCK_INFO.safe")
    firmware = r.u64("TPMS_ATTEST.firmwareVersion")
    body: AttestBody
    if kind == TPM_ST_ATTEST_QUOTE:
        body = QuoteInfo(_pcr_selection(r), r.tpm2b("TPMS_QUOTE_INFO.pcrDigest", _MAX_DIGEST))
    elif kind == TPM_ST_ATTEST_CERTIFY:
        body = CertifyInfo(
            r.tpm2b("TPMS_CERTIFY_INFO.name", _MAX_NAME),
            r.tpm2b("TPMS_CERTIFY_INFO.qualifiedName", _MAX_NAME),
        )
    elif kind == TPM_ST_ATTEST_CREATION:
        body = CreationInfo(
            r.tpm2b("TPMS_CREATION_INFO.objectName", _MAX_NAME),
            r.tpm2b("TPMS_CREATION_INFO.creationHash", _MAX_DIGEST),
        )
    else:
        body = _other_attest(r, kind, at)
    r.finish()
    return RawAttest(magic, kind, signer, extra, clock, reset_count, restart_count, safe != 0, firmware, body)


def _pcr_selection(r: _Reader) -> tuple[tuple[int, bytes], ...]:
    at = r.pos
    count = r.u32("TPML_PCR_SELECTION.count")
    if count > _MAX_PCR_BANKS:
        r.malformed("TPML_PCR_SELECTION.count", at, f"is {count}; at most {_MAX_PCR_BANKS} banks exist")
    banks = []
    for i in range(count):
        alg = r.u16(f"TPMS_PCR_SELECTION[{i}].hash")
        size_at = r.pos
        size = r.u8(f"TPMS_PCR_SELECTION[{i}].sizeofSelect")
        if size > _MAX_PCR_SELECT:
            r.malformed(
                f"TPMS_PCR_SELECTION[{i}].sizeofSelect", size_at, f"is {size}; at most {_MAX_PCR_SELECT}"
            )
        banks.append((alg, r.take(size, f"TPMS_PCR_SELECTION[{i}].pcrSelect")))
    return tuple(banks)


def _other_attest(r: _Reader, kind: int, at: int) -> OtherAttestInfo:
    start = r.pos
    if kind == TPM_ST_ATTEST_NV:
        r.tpm2b("TPMS_NV_CERTIFY_INFO.indexName", _MAX_NAME)
        r.u16("TPMS_NV_CERTIFY_INFO.offset")
        r.tpm2b("TPMS_NV_CERTIFY_INFO.nvContents", _MAX_NV)
    elif kind == TPM_ST_ATTEST_NV_DIGEST:
        r.tpm2b("TPMS_NV_DIGEST_CERTIFY_INFO.indexName", _MAX_NAME)
        r.tpm2b("TPMS_NV_DIGEST_CERTIFY_INFO.nvDigest", _MAX_DIGEST)
    elif kind == TPM_ST_ATTEST_COMMAND_AUDIT:
        r.u64("TPMS_COMMAND_AUDIT_INFO.auditCounter")
        r.u16("TPMS_COMMAND_AUDIT_INFO.digestAlg")
        r.tpm2b("TPMS_COMMAND_AUDIT_INFO.auditDigest", _MAX_DIGEST)
        r.tpm2b("TPMS_COMMAND_AUDIT_INFO.commandDigest", _MAX_DIGEST)
    elif kind == TPM_ST_ATTEST_SESSION_AUDIT:
        r.u8("TPMS_SESSION_AUDIT_INFO.exclusiveSession")
        r.tpm2b("TPMS_SESSION_AUDIT_INFO.sessionDigest", _MAX_DIGEST)
    elif kind == TPM_ST_ATTEST_TIME:
        r.take(8 + 17 + 8, "TPMS_TIME_ATTEST_INFO")  # time, clockInfo, firmwareVersion
    else:
        r.malformed("TPMS_ATTEST.type", at, f"is 0x{kind:04x}, not an attestation type")
    return OtherAttestInfo(r.data[start : r.pos])


# --- signatures ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawSignature:
    """A TPMT_SIGNATURE of a supported scheme: RSASSA/RSAPSS (the signature) or ECDSA (DER-encoded r, s)."""

    scheme: int
    hash_alg: int
    signature: bytes


_OTHER_SIGNATURE_SCHEMES = frozenset({ALG_ECDAA, ALG_SM2, ALG_ECSCHNORR, ALG_HMAC, ALG_NULL})


def read_signature(data: bytes) -> RawSignature:
    """Read a marshalled TPMT_SIGNATURE (``tpm2_quote -s``); schemes other than RSASSA, RSAPSS and ECDSA are
    refused as ``signature-unsupported``."""
    r = _Reader(data, "TPMT_SIGNATURE")
    scheme = r.u16("TPMT_SIGNATURE.sigAlg")
    if scheme in (ALG_RSASSA, ALG_RSAPSS):
        hash_alg = r.u16("TPMS_SIGNATURE_RSA.hash")
        raw = r.tpm2b("TPMS_SIGNATURE_RSA.sig", _MAX_RSA)
    elif scheme == ALG_ECDSA:
        hash_alg = r.u16("TPMS_SIGNATURE_ECC.hash")
        sig_r = r.tpm2b("TPMS_SIGNATURE_ECC.signatureR", _MAX_ECC)
        sig_s = r.tpm2b("TPMS_SIGNATURE_ECC.signatureS", _MAX_ECC)
        raw = encode_dss_signature(int.from_bytes(sig_r, "big"), int.from_bytes(sig_s, "big"))
    elif scheme in _OTHER_SIGNATURE_SCHEMES:
        raise TPMStructureError(
            f"signature scheme 0x{scheme:04x} is not supported", code="signature-unsupported"
        )
    else:
        r.malformed("TPMT_SIGNATURE.sigAlg", 0, f"is 0x{scheme:04x}, not a signature scheme")
    r.finish()
    return RawSignature(scheme, hash_alg, raw)
