"""The embedded key store: key material sealed under a key-encryption key (KEK) the central keeps on disk.

A sealed reference is ``base64(version ‖ KEK id ‖ nonce ‖ AES-256-GCM ciphertext and tag)``, with the key's
id and the KEK id as associated data, so a blob copied onto another key's row, or altered, does not open.
The KEK id (the first 8 octets of SHA-256 of the KEK) names which KEK sealed a blob: during a rotation
(``secl-central rotate-kek``) the store holds the old and the new KEK and opens blobs of either, and after
it only the new one remains.

KEK files live in ``<keys>/kek/``: ``<id>.key`` (32 random octets, 0600) per KEK and ``current`` naming the
one new keys are sealed under.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from secl.central.kbs import keymaterial
from secl.central.kbs.keystore import KeyMaterialInvalid, KeySpec, KeyStoreUnavailable, StoredKey

_VERSION = b"\x01"
_KEK_ID_BYTES = 8
_NONCE_BYTES = 12
KEK_BYTES = 32
STORE_NAME = "sealed"


def kek_id(kek: bytes) -> str:
    return hashlib.sha256(kek).digest()[:_KEK_ID_BYTES].hex()


class SealedKeyStore:
    """Seals material under the current KEK; opens blobs sealed under any KEK it holds."""

    name = STORE_NAME

    def __init__(self, keks: Mapping[str, bytes], current: str) -> None:
        if current not in keks:
            raise KeyStoreUnavailable(
                f"the current KEK {current} is not among the KEKs loaded", code="kek-missing"
            )
        for identifier, kek in keks.items():
            if len(kek) != KEK_BYTES or kek_id(kek) != identifier:
                raise KeyStoreUnavailable(
                    f"KEK {identifier} is damaged (wrong size or digest)", code="kek-damaged"
                )
        self._keks = dict(keks)
        self.current = current
        self._directory: Path | None = None

    def _reload(self) -> None:
        """Read the KEK directory again: ``secl-central rotate-kek`` may have run since this store loaded it
        (a running central must then seal under the new KEK and open keys re-sealed under it)."""
        if self._directory is None:
            return
        fresh = SealedKeyStore.from_directory(self._directory)
        self._keks = fresh._keks  # first: the new current KEK is among them before it is used
        self.current = fresh.current

    @classmethod
    def from_directory(cls, directory: Path) -> SealedKeyStore:
        """Load every KEK of ``<keys>/kek/``; the file ``current`` names the one to seal under."""
        try:
            current = (directory / "current").read_text().strip()
            keks = {path.stem: path.read_bytes() for path in directory.glob("*.key")}
        except OSError as exc:
            raise KeyStoreUnavailable(
                f"cannot read the key-encryption keys in {directory}: {exc.strerror}; run `secl-central setup`",
                code="kek-missing",
            ) from None
        store = cls(keks, current)
        store._directory = directory
        return store

    def create(self, key_id: str, spec: KeySpec) -> StoredKey:
        return self.seal(key_id, keymaterial.generate(spec))

    def register(self, key_id: str, spec: KeySpec, material: bytes) -> StoredKey:
        return self.seal(key_id, keymaterial.normalize(spec, material))

    def seal(self, key_id: str, material: bytes, *, under: str | None = None) -> StoredKey:
        if under is None and self._directory is not None:
            try:
                current = (self._directory / "current").read_text().strip()
            except OSError:
                current = self.current
            if current != self.current or current not in self._keks:
                self._reload()
        identifier = under or self.current
        kek = self._keks[identifier]
        header = _VERSION + bytes.fromhex(identifier)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(kek).encrypt(nonce, material, _associated(key_id, header))
        return StoredKey(STORE_NAME, base64.b64encode(header + nonce + sealed).decode())

    def material(self, key_id: str, stored: StoredKey) -> bytes:
        try:
            blob = base64.b64decode(stored.reference, validate=True)
        except (binascii.Error, ValueError):
            raise KeyMaterialInvalid("the sealed key is not base64", code="sealed-key-damaged") from None
        header_size = 1 + _KEK_ID_BYTES
        if len(blob) < header_size + _NONCE_BYTES + 16 or blob[:1] != _VERSION:
            raise KeyMaterialInvalid("the sealed key is damaged (bad header)", code="sealed-key-damaged")
        identifier = blob[1:header_size].hex()
        kek = self._keks.get(identifier)
        if kek is None:
            self._reload()
            kek = self._keks.get(identifier)
        if kek is None:
            raise KeyStoreUnavailable(
                f"the key is sealed under KEK {identifier}, which this central does not hold",
                code="kek-missing",
            )
        nonce = blob[header_size : header_size + _NONCE_BYTES]
        try:
            return AESGCM(kek).decrypt(
                nonce, blob[header_size + _NONCE_BYTES :], _associated(key_id, blob[:header_size])
            )
        except InvalidTag:
            raise KeyMaterialInvalid(
                "the sealed key does not open: it was altered or belongs to another key",
                code="sealed-key-damaged",
            ) from None

    def sealed_under(self, stored: StoredKey) -> str:
        """The id of the KEK a reference was sealed under (rotation re-seals those that are not current)."""
        blob = base64.b64decode(stored.reference)
        return blob[1 : 1 + _KEK_ID_BYTES].hex()

    def delete(self, key_id: str, stored: StoredKey) -> None:
        """Nothing to destroy outside the database: the sealed blob goes with the key's row."""


def _associated(key_id: str, header: bytes) -> bytes:
    return b"secl-kbs-key\x00" + key_id.encode() + b"\x00" + header


def new_kek() -> bytes:
    return os.urandom(KEK_BYTES)


def write_kek(
    directory: Path, kek: bytes, *, make_current: bool, owner: tuple[int, int] | None = None
) -> str:
    """Write a KEK file (0600, never readable by others at any moment); optionally make it current.

    ``current`` is replaced by rename, so a reader sees the old or the new name, never half a file. With
    ``owner`` (uid, gid) the files are given to that user before anyone can see them: a KEK that root writes
    for a central running as its service user must be readable by that user.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    identifier = kek_id(kek)
    path = directory / f"{identifier}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        if owner is not None:
            os.fchown(out.fileno(), *owner)
        out.write(kek)
        out.flush()
        os.fsync(out.fileno())
    if make_current:
        make_kek_current(directory, identifier, owner=owner)
    return identifier


def make_kek_current(directory: Path, identifier: str, *, owner: tuple[int, int] | None = None) -> None:
    staging = directory / "current.new"
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        if owner is not None:
            os.fchown(out.fileno(), *owner)
        out.write(identifier + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(staging, directory / "current")


def directory_owner(directory: Path) -> tuple[int, int] | None:
    """The (uid, gid) new KEK files must have to be readable by the central: the KEK directory's owner,
    when this process may give files away (root) and it is not this process's own user; else None."""
    status = directory.stat()
    if os.geteuid() != 0 or (status.st_uid, status.st_gid) == (os.geteuid(), os.getegid()):
        return None
    return status.st_uid, status.st_gid
