"""The embedded key store: material sealed under a KEK, bound to its key id, and KEK files on disk."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from secl.central.kbs import keymaterial
from secl.central.kbs.keystore import (
    KeyAlgorithm,
    KeyMaterialInvalid,
    KeySpec,
    KeyStoreUnavailable,
    StoredKey,
)
from secl.central.kbs.sealedstore import SealedKeyStore, kek_id, make_kek_current, new_kek, write_kek

AES256 = KeySpec(KeyAlgorithm.AES, 256)


@pytest.fixture
def kek_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "kek"
    write_kek(directory, new_kek(), make_current=True)
    return directory


def test_material_round_trips_and_never_appears_in_the_reference(kek_dir: Path):
    store = SealedKeyStore.from_directory(kek_dir)
    material = bytes(range(32))
    stored = store.register("key-1", AES256, material)
    assert stored.store == "sealed"
    assert material not in base64.b64decode(stored.reference)
    assert material.hex() not in stored.reference
    assert store.material("key-1", stored) == material
    created = store.create("key-2", AES256)
    assert len(store.material("key-2", created)) == 32
    assert store.material("key-2", created) != material


def test_a_reference_moved_to_another_key_or_altered_does_not_open(kek_dir: Path):
    store = SealedKeyStore.from_directory(kek_dir)
    stored = store.register("key-1", AES256, bytes(32))
    with pytest.raises(KeyMaterialInvalid) as moved:
        store.material("key-2", stored)
    assert moved.value.code == "sealed-key-damaged"
    blob = bytearray(base64.b64decode(stored.reference))
    blob[-1] ^= 1
    with pytest.raises(KeyMaterialInvalid):
        store.material("key-1", StoredKey("sealed", base64.b64encode(bytes(blob)).decode()))
    with pytest.raises(KeyMaterialInvalid):
        store.material("key-1", StoredKey("sealed", "not base64!"))
    with pytest.raises(KeyMaterialInvalid):
        store.material("key-1", StoredKey("sealed", base64.b64encode(b"\x01short").decode()))


def test_kek_files_are_0600_and_rotation_keeps_old_blobs_readable(kek_dir: Path):
    first = (kek_dir / "current").read_text().strip()
    assert stat.S_IMODE((kek_dir / f"{first}.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(kek_dir.stat().st_mode) == 0o700
    store = SealedKeyStore.from_directory(kek_dir)
    old = store.register("key-1", AES256, bytes(32))
    second = write_kek(kek_dir, new_kek(), make_current=False)
    make_kek_current(kek_dir, second)
    rotated = SealedKeyStore.from_directory(kek_dir)
    assert rotated.current == second != first
    assert rotated.material("key-1", old) == bytes(32)
    assert rotated.sealed_under(old) == first
    resealed = rotated.seal("key-1", rotated.material("key-1", old))
    assert rotated.sealed_under(resealed) == second
    (kek_dir / f"{first}.key").unlink()
    after = SealedKeyStore.from_directory(kek_dir)
    assert after.material("key-1", resealed) == bytes(32)
    with pytest.raises(KeyStoreUnavailable) as gone:
        after.material("key-1", old)
    assert gone.value.code == "kek-missing"


def test_a_missing_or_damaged_kek_is_a_clear_error(tmp_path: Path, kek_dir: Path):
    with pytest.raises(KeyStoreUnavailable, match="secl-central setup"):
        SealedKeyStore.from_directory(tmp_path / "nowhere")
    kek = new_kek()
    with pytest.raises(KeyStoreUnavailable) as damaged:
        SealedKeyStore({kek_id(kek): kek[:-1]}, kek_id(kek))
    assert damaged.value.code == "kek-damaged"


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        (KeySpec(KeyAlgorithm.AES, 512), "key-length-unsupported"),
        (KeySpec(KeyAlgorithm.RSA, 1024), "key-length-unsupported"),
        (KeySpec(KeyAlgorithm.EC, curve="secp192r1"), "key-curve-unsupported"),
    ],
)
def test_unsupported_specs_are_refused(spec: KeySpec, code: str):
    with pytest.raises(KeyMaterialInvalid) as refused:
        keymaterial.generate(spec)
    assert refused.value.code == code


def test_registered_material_is_checked_against_its_spec_and_stored_as_pkcs8():
    rsa_key = rsa.generate_private_key(65537, 2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = keymaterial.normalize(KeySpec(KeyAlgorithm.RSA, 2048), pem)
    loaded = serialization.load_der_private_key(der, None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == rsa_key.private_numbers()
    with pytest.raises(KeyMaterialInvalid):
        keymaterial.normalize(KeySpec(KeyAlgorithm.RSA, 3072), pem)
    with pytest.raises(KeyMaterialInvalid):
        keymaterial.normalize(KeySpec(KeyAlgorithm.EC, curve="secp256r1"), pem)
    with pytest.raises(KeyMaterialInvalid):
        keymaterial.normalize(AES256, bytes(16))
    with pytest.raises(KeyMaterialInvalid):
        keymaterial.normalize(KeySpec(KeyAlgorithm.RSA, 2048), b"-----BEGIN garbage")
    ec_der = keymaterial.generate(KeySpec(KeyAlgorithm.EC, curve="prime256v1"))
    ec_key = serialization.load_der_private_key(ec_der, None)
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey) and ec_key.curve.name == "secp256r1"
    assert keymaterial.normalize(KeySpec(KeyAlgorithm.EC, curve="secp256r1"), ec_der) == ec_der
