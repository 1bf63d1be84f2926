"""``secl-central rotate-kek``: every sealed key re-sealed under a new KEK, which becomes current; the old KEK
file is gone and every key still opens, through the API of a central that was running during the rotation.
A rotation interrupted after the re-seal (the new KEK not yet current) is finished by running it again."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from secl.central.cli import cli
from secl.central.kbs import kekrotation
from secl.central.kbs.kekrotation import remove_unused_keks
from secl.central.kbs.keystore import StoredKey
from secl.central.kbs.sealedstore import SealedKeyStore, kek_id, new_kek, write_kek
from secl.central.store.db import Database
from secl.central.store.kbs_models import KeyRecord
from tests.central_fixtures import CentralState
from tests.live_central import _toml


def _kek_files(directory: Path) -> set[str]:
    return {path.stem for path in directory.glob("*.key")}


def _owner_unwrap(client: FlaskClient, headers: dict[str, str], key_id: str) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    owner = rsa.generate_private_key(65537, 2048)
    pem = owner.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    response = client.post(
        f"/kbs/v1/keys/{key_id}", data=pem, headers={**headers, "Content-Type": "application/x-pem-file"}
    )
    assert response.status_code == 200, response.get_json()
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), b"TPM2\x00")
    return owner.decrypt(base64.b64decode(response.get_json()["payload"]), oaep)


def _rotate(central_state: CentralState, tmp_path: Path) -> str:
    config = tmp_path / "central.toml"
    config.write_text(_toml(central_state.config))
    result = CliRunner().invoke(cli, ["--config", str(config), "rotate-kek", "--settle-seconds", "0"])
    assert result.exit_code == 0, result.output
    return result.output


def test_rotate_kek_reseals_every_key_and_removes_the_old_kek(
    central_app: Flask, client: FlaskClient, admin_headers: dict[str, str], central_state: CentralState,
    tmp_path: Path,
) -> None:  # fmt: skip
    kek_dir = central_state.config.keys_dir / "kek"
    (old,) = _kek_files(kek_dir)
    materials = {}
    for _ in range(3):
        material = os.urandom(32)
        created = client.post("/kbs/v1/keys", headers=admin_headers, json={
            "key_information": {"algorithm": "AES", "key_length": 256,
                                "key_string": base64.b64encode(material).decode()},
        })  # fmt: skip
        assert created.status_code == 201, created.get_json()
        materials[created.get_json()["key_information"]["id"]] = material
    assert all(_owner_unwrap(client, admin_headers, k) == m for k, m in materials.items())

    output = _rotate(central_state, tmp_path)
    assert "3 key(s) re-sealed" in output and old in output
    (new,) = _kek_files(kek_dir)
    assert new != old and (kek_dir / "current").read_text().strip() == new
    assert not (kek_dir / f"{old}.key").exists()
    assert oct((kek_dir / f"{new}.key").stat().st_mode & 0o777) == "0o600"

    # The central that ran through the rotation opens every key and seals new ones under the new KEK.
    assert all(_owner_unwrap(client, admin_headers, k) == m for k, m in materials.items())
    created = client.post(
        "/kbs/v1/keys",
        headers=admin_headers,
        json={"key_information": {"algorithm": "AES", "key_length": 256}},
    )
    assert created.status_code == 201, created.get_json()
    database = Database(central_state.config.sqlalchemy_url)
    try:
        with database.sessions() as session:
            rows = list(session.scalars(select(KeyRecord)))
            store = SealedKeyStore.from_directory(kek_dir)
            assert {store.sealed_under(StoredKey(r.store, r.reference)) for r in rows} == {new}
    finally:
        database.dispose()
    events = client.get(
        "/aas/v1/audit-events", headers=admin_headers, query_string={"limit": 1000}
    ).get_json()
    rotated = [e for e in events if e["action"] == "kbs.kek-rotated"]
    assert len(rotated) == 1 and rotated[0]["target"] == new
    assert not any(m.hex() in str(events) for m in materials.values())


def test_an_interrupted_rotation_is_finished_by_running_it_again(
    central_app: Flask, client: FlaskClient, admin_headers: dict[str, str], central_state: CentralState,
    tmp_path: Path,
) -> None:  # fmt: skip
    kek_dir = central_state.config.keys_dir / "kek"
    (old,) = _kek_files(kek_dir)
    material = os.urandom(32)
    created = client.post("/kbs/v1/keys", headers=admin_headers, json={
        "key_information": {"algorithm": "AES", "key_length": 256, "key_string": base64.b64encode(material).decode()},
    })  # fmt: skip
    key_id = created.get_json()["key_information"]["id"]
    # A crash right after step 1: a new KEK file that is not current and seals nothing.
    stray = write_kek(kek_dir, new_kek(), make_current=False)
    assert stray == kek_id((kek_dir / f"{stray}.key").read_bytes())
    database = Database(central_state.config.sqlalchemy_url)
    try:
        with database.sessions() as session:
            assert remove_unused_keks(session, kek_dir) == (stray,)  # the clean-up step alone: only it goes
    finally:
        database.dispose()
    assert _kek_files(kek_dir) == {old}
    write_kek(kek_dir, new_kek(), make_current=False)
    _rotate(central_state, tmp_path)
    assert len(_kek_files(kek_dir)) == 1 and old not in _kek_files(kek_dir)
    assert _owner_unwrap(client, admin_headers, key_id) == material


def test_a_rotation_that_crashed_after_the_reseal_is_finished_by_running_it_again(
    client: FlaskClient, admin_headers: dict[str, str], central_state: CentralState,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Every key re-sealed under the new KEK, committed, then a crash before it became current: the keys
    still open (both KEK files are there), and the next run leaves one KEK, current, sealing every key."""
    kek_dir = central_state.config.keys_dir / "kek"
    (old,) = _kek_files(kek_dir)
    material = os.urandom(32)
    created = client.post("/kbs/v1/keys", headers=admin_headers, json={
        "key_information": {"algorithm": "AES", "key_length": 256, "key_string": base64.b64encode(material).decode()},
    })  # fmt: skip
    key_id = created.get_json()["key_information"]["id"]

    def crash(directory: Path, identifier: str, **_: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(kekrotation, "make_kek_current", crash)
    database = Database(central_state.config.sqlalchemy_url)
    try:
        with database.sessions() as session, pytest.raises(OSError):
            kekrotation.rotate_kek(session, kek_dir)
    finally:
        database.dispose()
    monkeypatch.undo()
    assert (kek_dir / "current").read_text().strip() == old and len(_kek_files(kek_dir)) == 2
    assert _owner_unwrap(client, admin_headers, key_id) == material
    _rotate(central_state, tmp_path)
    (final,) = _kek_files(kek_dir)
    assert final != old and (kek_dir / "current").read_text().strip() == final
    assert _owner_unwrap(client, admin_headers, key_id) == material


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_rotate_kek_run_as_root_leaves_the_kek_readable_by_the_centrals_user(
    client: FlaskClient, admin_headers: dict[str, str], central_state: CentralState, tmp_path: Path
) -> None:
    """``secl-central setup --owner secl`` gives the KEK files to the service user; an operator then runs
    rotate-kek as root: the new KEK and ``current`` must still belong to that user, or the central running
    as it cannot open any key."""
    kek_dir = central_state.config.keys_dir / "kek"
    service_user = (4242, 4242)
    for path in (kek_dir, *kek_dir.iterdir()):
        os.chown(path, *service_user)
    _rotate(central_state, tmp_path)
    for path in (kek_dir, *kek_dir.iterdir()):
        status = path.stat()
        assert (status.st_uid, status.st_gid) == service_user, path.name
        if path.is_file():
            assert status.st_mode & 0o777 == 0o600, path.name


def test_a_key_committed_under_the_old_kek_during_the_rotation_keeps_it(
    client: FlaskClient, admin_headers: dict[str, str], central_state: CentralState,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A running central sealed a key under the old KEK just before the new one became current, and commits
    it while rotate-kek settles: the old KEK is not removed under it, and the next rotation re-seals it."""
    kek_dir = central_state.config.keys_dir / "kek"
    (old,) = _kek_files(kek_dir)
    before = SealedKeyStore.from_directory(kek_dir)
    material = os.urandom(32)
    sealed = before.seal("late-key", material, under=old)
    policy = client.get("/kbs/v1/key-transfer-policies", headers=admin_headers).get_json()[0]["id"]
    database = Database(central_state.config.sqlalchemy_url)

    def late_commit(seconds: float) -> None:
        assert seconds == 1.5
        with database.sessions() as other:
            other.add(KeyRecord(id="late-key", algorithm="AES", key_length=256, label="", usage="",
                                transfer_policy_id=policy, store="sealed", reference=sealed.reference,
                                created_by="test"))  # fmt: skip
            other.commit()

    monkeypatch.setattr(kekrotation.time, "sleep", late_commit)
    try:
        with database.sessions() as session:
            rotation = kekrotation.rotate_kek(session, kek_dir, settle_seconds=1.5)
    finally:
        database.dispose()
    monkeypatch.undo()
    assert rotation.removed == () and old in _kek_files(kek_dir)
    assert (kek_dir / "current").read_text().strip() == rotation.new
    assert _owner_unwrap(client, admin_headers, "late-key") == material
    _rotate(central_state, tmp_path)
    assert len(_kek_files(kek_dir)) == 1 and old not in _kek_files(kek_dir)
    assert _owner_unwrap(client, admin_headers, "late-key") == material
