"""secl-wpm with the key broker of a real central over TLS (``--central``): the key is created in the broker
(or reused with ``--key-id``), arrives wrapped to an RSA key the tool makes in memory, and an image
encrypted that way decrypts back byte for byte with the key fetched the same way. The session is the one
``secl login`` saved; the key is on no command line, in no output and in no file."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from secl.wpm.cli import cli as wpm_cli
from tests.cli_central import Central

MIB = 1 << 20
FAST = "10"  # ms of PBKDF2 per key slot in tests


def wpm(central: Central, *args: str) -> Result:
    env = {"HOME": str(central.home), "XDG_CONFIG_HOME": str(central.home / "config")}
    return CliRunner().invoke(wpm_cli, list(args), env=env)


def _one_line_error(result: Result, *needles: str) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("secl-wpm: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _key_ids(central: Central) -> list[str]:
    listed = json.loads(central.run("keys", "list", "-o", "json").stdout)
    return [k["key_information"]["id"] for k in listed]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_encrypt_with_the_broker_then_decrypt_back_identical(central: Central, tmp_path: Path) -> None:
    assert central.login().exit_code == 0
    policy = json.loads(central.run("key-policies", "create", "images", "-o", "json").stdout)
    image = tmp_path / "disk.raw"
    image.write_bytes(os.urandom(2 * MIB))
    out = tmp_path / "disk.luks"

    encrypted = wpm(central, "encrypt-image", str(image), str(out), "--central", central.url,
                    "--ca-file", str(central.root_ca), "--policy", policy["id"], "--iter-time", FAST)  # fmt: skip
    assert encrypted.exit_code == 0, encrypted.output
    found = re.search(r"key (\S+) in the key broker \(created\); transfer URL (\S+)", encrypted.stderr)
    assert found, encrypted.stderr
    key_id, key_url = found.groups()
    shown = json.loads(central.run("keys", "show", key_id, "-o", "json").stdout)
    assert shown["transfer_policy_id"] == policy["id"] and shown["key_information"]["key_length"] == 256
    assert key_url == shown["transfer_link"] == f"{central.url}/kbs/v1/keys/{key_id}/transfer"
    flavor = json.loads(out.with_name("disk.luks.flavor.json").read_text())["flavor"]
    assert flavor["encryption"]["key_url"] == key_url
    digest = base64.b64encode(hashlib.sha256(out.read_bytes()).digest()).decode()
    assert flavor["encryption"]["digest"] == digest

    back = tmp_path / "back.raw"
    decrypted = wpm(
        central, "decrypt-image", str(out), str(back), "--central", central.url, "--key-id", key_id
    )
    assert decrypted.exit_code == 0, decrypted.output
    assert back.read_bytes() == image.read_bytes()

    # --key-id reuses the key (here into a qcow2, the CA pinned by fingerprint); it decrypts the same way.
    fingerprint = central.root_ca.read_bytes()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    pin = x509.load_pem_x509_certificate(fingerprint).fingerprint(hashes.SHA384()).hex()
    qcow = tmp_path / "disk.qcow2"
    reused = wpm(central, "encrypt-image", str(image), str(qcow), "--format", "qcow2", "--central", central.url,
                 "--ca-fingerprint", pin, "--key-id", key_id, "--iter-time", FAST)  # fmt: skip
    assert reused.exit_code == 0, reused.output
    assert f"key {key_id} in the key broker (reused)" in reused.stderr
    back2 = tmp_path / "back2.raw"
    again = wpm(central, "decrypt-image", str(qcow), str(back2), "--format", "raw", "--central", central.url,
                "--key-id", key_id)  # fmt: skip
    assert again.exit_code == 0, again.output
    assert back2.read_bytes() == image.read_bytes()

    # Another broker key does not open the image: one line, nothing written.
    other = json.loads(central.run("keys", "create", "-o", "json").stdout)["key_information"]["id"]
    wrong = wpm(central, "decrypt-image", str(out), str(tmp_path / "x.raw"), "--central", central.url,
                "--key-id", other)  # fmt: skip
    _one_line_error(wrong, "does not open")
    assert not (tmp_path / "x.raw").exists()

    # A failed encryption deletes the key it created; a key that is not AES-256 is refused.
    before = _key_ids(central)
    failed = wpm(central, "encrypt-image", str(tmp_path / "missing.raw"), str(tmp_path / "m.luks"),
                 "--central", central.url, "--iter-time", FAST)  # fmt: skip
    assert failed.exit_code == 1, failed.output
    assert sorted(_key_ids(central)) == sorted(before)
    aes128 = json.loads(central.run("keys", "create", "--length", "128", "-o", "json").stdout)
    small = wpm(central, "decrypt-image", str(out), str(tmp_path / "y.raw"), "--central", central.url,
                "--key-id", aes128["key_information"]["id"])  # fmt: skip
    _one_line_error(small, "AES-256")

    # Usage errors and no session: one line each.
    assert wpm(central, "decrypt-image", str(out), str(back), "--central", central.url).exit_code == 2
    assert wpm(central, "encrypt-image", str(image), str(out), "--key-id", key_id).exit_code == 2
    unknown = wpm(central, "decrypt-image", str(out), str(tmp_path / "z.raw"), "--central", central.url,
                  "--key-id", "00000000-0000-4000-8000-000000000000")  # fmt: skip
    _one_line_error(unknown, "not-found")
    elsewhere = wpm(central, "decrypt-image", str(out), str(tmp_path / "z.raw"), "--central",
                    "https://other.invalid:8443", "--key-id", key_id)  # fmt: skip
    _one_line_error(elsewhere, "secl login --url https://other.invalid:8443")
    assert central.run("logout").exit_code == 0
    _one_line_error(
        wpm(
            central,
            "decrypt-image",
            str(out),
            str(tmp_path / "z.raw"),
            "--central",
            central.url,
            "--key-id",
            key_id,
        ),
        "not logged in",
    )
