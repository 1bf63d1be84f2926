"""Where key material lives: the interface every key store implements, and its errors.

The key broker's database keeps a key's metadata and a *reference* to its material, never the material in
plaintext. A :class:`KeyStore` turns material into a reference and back:

- :class:`secl.central.kbs.sealedstore.SealedKeyStore`, the embedded default: the reference is the material
  sealed (AES-256-GCM) under a key-encryption key in the central's key directory;
- :class:`secl.central.kbs.kmipstore.KmipKeyStore`: the material stays on a KMIP server; the reference is
  its unique identifier there.

Material is in one form for every store: an AES key's raw octets; an RSA or EC private key as PKCS#8 DER.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class KeyAlgorithm(enum.Enum):
    AES = "AES"
    RSA = "RSA"
    EC = "EC"


#: What the broker creates (SecL's KBS lists the same): AES key lengths, RSA moduli, EC curves.
AES_LENGTHS = (128, 192, 256)
RSA_LENGTHS = (2048, 3072, 4096, 7680)
EC_CURVES = ("secp256r1", "secp384r1", "secp521r1", "prime256v1")


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What kind of key: ``length`` in bits for AES and RSA, ``curve`` for EC."""

    algorithm: KeyAlgorithm
    length: int | None = None
    curve: str | None = None


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What the database keeps for a key's material: which store holds it and that store's reference."""

    store: str  # "sealed" or "kmip"
    reference: str  # the sealed blob (base64) or the KMIP unique identifier


class KeyStoreError(Exception):
    """A key store cannot do what was asked; ``code`` names the fault for the API and the logs."""

    code = "keystore-error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class KeyStoreUnavailable(KeyStoreError):
    """The store cannot be reached now (a KMIP server down, a KEK file unreadable): try again later."""

    code = "keystore-unavailable"


class KeyMaterialInvalid(KeyStoreError):
    """The material does not fit the spec, or a reference does not open (tampered, another KEK)."""

    code = "key-material-invalid"


class KeyStore(Protocol):
    """A place for key material. ``key_id`` binds material to its key: a reference moved to another key
    does not open there."""

    name: str

    def create(self, key_id: str, spec: KeySpec) -> StoredKey:
        """Generate a new key of ``spec`` inside the store."""
        ...

    def register(self, key_id: str, spec: KeySpec, material: bytes) -> StoredKey:
        """Keep existing material (an image owner's own key)."""
        ...

    def material(self, key_id: str, stored: StoredKey) -> bytes:
        """The key's material, for wrapping it to a host; never logged, never returned in plaintext."""
        ...

    def delete(self, key_id: str, stored: StoredKey) -> None:
        """Destroy the material where the store can (a KMIP server); a sealed blob dies with its row."""
        ...
