"""TPM hash algorithms: their TCG identifiers, names and digest sizes.

The event log and TPM structures name algorithms by their TPM_ALG_ID; reports and JSON name them by the
lower-case names tpm2-tools uses ("sha256"). This module is the one place that maps between the two.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes

from secl.core.errors import EvidenceError


class HashAlg(enum.IntEnum):
    """A TPM_ALG_ID of a hash algorithm the evidence core can compute."""

    SHA1 = 0x0004
    SHA256 = 0x000B
    SHA384 = 0x000C
    SHA512 = 0x000D
    SM3_256 = 0x0012

    @property
    def bank_name(self) -> str:
        """The lower-case name tpm2-tools and our JSON use: ``sha1``, ``sha256``, ``sm3_256``..."""
        return self.name.lower()

    @property
    def digest_size(self) -> int:
        return _DIGEST_SIZES[self]

    def hash(self, data: bytes) -> bytes:
        """Return the digest of ``data`` under this algorithm."""
        return _HASHERS[self](data)

    @property
    def hasher(self) -> Callable[[bytes], bytes]:
        """The one-shot hash function itself, for loops that hash many short inputs."""
        return _HASHERS[self]

    def new(self) -> hashes.HashContext | _HashlibContext:
        """Return an incremental hash context with ``update`` and ``finalize``."""
        if self is HashAlg.SM3_256:
            return hashes.Hash(hashes.SM3())
        return _HashlibContext(hashlib.new(_HASHLIB_NAMES[self]))

    def cryptography_hash(self) -> hashes.HashAlgorithm:
        return _CRYPTOGRAPHY_HASHES[self]()

    @classmethod
    def from_name(cls, name: str) -> HashAlg:
        """Parse ``sha256``, ``SHA256``, ``sha-256`` or ``sm3_256``; raise :class:`EvidenceError` otherwise."""
        key = name.strip().lower().replace("-", "")
        for alg in cls:
            if alg.bank_name.replace("_", "") == key.replace("_", ""):
                return alg
        raise EvidenceError(f"unknown hash algorithm {name!r}", code="unknown-hash-algorithm")

    @classmethod
    def from_id(cls, alg_id: int) -> HashAlg:
        """Map a TPM_ALG_ID to a hash algorithm; raise :class:`EvidenceError` for any other id."""
        try:
            return cls(alg_id)
        except ValueError:
            raise EvidenceError(
                f"unsupported hash algorithm id 0x{alg_id:04x}", code="unknown-hash-algorithm"
            ) from None


class _HashlibContext:
    """Give hashlib objects the ``update``/``finalize`` shape of cryptography's contexts."""

    __slots__ = ("_h",)

    def __init__(self, h: hashlib._Hash) -> None:
        self._h = h

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def finalize(self) -> bytes:
        return self._h.digest()


_DIGEST_SIZES = {
    HashAlg.SHA1: 20,
    HashAlg.SHA256: 32,
    HashAlg.SHA384: 48,
    HashAlg.SHA512: 64,
    HashAlg.SM3_256: 32,
}

_HASHLIB_NAMES = {
    HashAlg.SHA1: "sha1",
    HashAlg.SHA256: "sha256",
    HashAlg.SHA384: "sha384",
    HashAlg.SHA512: "sha512",
}

_CRYPTOGRAPHY_HASHES: dict[HashAlg, Callable[[], hashes.HashAlgorithm]] = {
    HashAlg.SHA1: hashes.SHA1,
    HashAlg.SHA256: hashes.SHA256,
    HashAlg.SHA384: hashes.SHA384,
    HashAlg.SHA512: hashes.SHA512,
    HashAlg.SM3_256: hashes.SM3,
}


def _sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


# hashlib's one-shot constructors are several times faster than cryptography's context objects for the
# short inputs of a replay, which is why SM3 (absent from hashlib builds without it) is the only exception.
_HASHERS: dict[HashAlg, Callable[[bytes], bytes]] = {
    HashAlg.SHA1: lambda d: hashlib.sha1(d).digest(),
    HashAlg.SHA256: lambda d: hashlib.sha256(d).digest(),
    HashAlg.SHA384: lambda d: hashlib.sha384(d).digest(),
    HashAlg.SHA512: lambda d: hashlib.sha512(d).digest(),
    HashAlg.SM3_256: _sm3,
}
