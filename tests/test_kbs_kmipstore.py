"""The KMIP key store against a real PyKMIP server: material round trips, deletion, the key-id binding,
a server down, hung or refusing our certificate, and the store the central's configuration names.

A plain PyKMIP client with its own socket setup (not the store's) reads the server's side of each check.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from secl.central.config import ConfigError, load_config
from secl.central.kbs import keymaterial
from secl.central.kbs.keystore import (
    KeyAlgorithm,
    KeyMaterialInvalid,
    KeySpec,
    KeyStoreError,
    KeyStoreUnavailable,
    StoredKey,
)
from secl.central.kbs.keystores import key_store_from_config
from secl.central.kbs.sealedstore import SealedKeyStore, new_kek, write_kek
from tests.kmip_server import (
    INSTALL_HINT,
    Credential,
    KmipEndpoint,
    KmipPki,
    KmipServer,
    SilentListener,
    endpoint,
    make_foreign_client,
)

try:
    from secl.central.kbs.kmipstore import KmipKeyStore, KmipSettings, object_name
except ImportError as missing:
    # A failure, never a skip: these tests must not pass without a KMIP server.
    pytest.fail(f"PyKMIP is not installed ({missing}): {INSTALL_HINT}", pytrace=False)

# The oracle below is PyKMIP's client with its own socket setup, which builds ssl.SSLContext(PROTOCOL_TLS):
# its deprecation warning is about that client, not about the store under test.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLS is deprecated:DeprecationWarning")

AES128 = KeySpec(KeyAlgorithm.AES, 128)
AES256 = KeySpec(KeyAlgorithm.AES, 256)
RSA2048 = KeySpec(KeyAlgorithm.RSA, 2048)
P256 = KeySpec(KeyAlgorithm.EC, curve="secp256r1")
P384 = KeySpec(KeyAlgorithm.EC, curve="secp384r1")


def store_for(where: KmipEndpoint, timeout: float = 5) -> KmipKeyStore:
    return KmipKeyStore(
        KmipSettings(
            host=where.host,
            port=where.port,
            client_certificate=where.client_certificate,
            client_key=where.client_key,
            ca_certificate=where.ca_certificate,
            timeout_seconds=timeout,
        )
    )


@pytest.fixture
def store(kmip_endpoint: KmipEndpoint) -> KmipKeyStore:
    return store_for(kmip_endpoint)


@contextmanager
def plain_client(where: KmipEndpoint) -> Iterator[Any]:
    """PyKMIP's client as its documentation shows it: the oracle for what the server holds."""
    from kmip.pie.client import ProxyKmipClient

    client = ProxyKmipClient(
        hostname=where.host,
        port=where.port,
        cert=str(where.client_certificate),
        key=str(where.client_key),
        ca=str(where.ca_certificate),
        config_file="/dev/null",
    )
    with client:
        yield client


def server_reason(where: KmipEndpoint, uid: str) -> str | None:
    """None if the server returns the object, else the KMIP result reason of its Get."""
    from kmip.pie.exceptions import KmipOperationFailure

    with plain_client(where) as client:
        try:
            client.get(uid)
        except KmipOperationFailure as exc:
            return exc.reason.name
    return None


# --- material round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [AES128, AES256], ids=["aes128", "aes256"])
def test_aes_keys_are_created_on_the_server_and_the_reference_is_its_uid(
    store: KmipKeyStore, kmip_endpoint: KmipEndpoint, spec: KeySpec
):
    stored = store.create("key-aes", spec)
    assert stored.store == "kmip"
    material = store.material("key-aes", stored)
    assert spec.length is not None and len(material) == spec.length // 8
    # The reference is the server's identifier, nothing of the material.
    assert material.hex() not in stored.reference and len(stored.reference) < 64
    with plain_client(kmip_endpoint) as client:
        held = client.get(stored.reference)
        _, attributes = client.get_attributes(stored.reference, ["Name"])
    assert bytes(held.value) == material
    assert [a.attribute_value.name_value.value for a in attributes] == [object_name("key-aes")]
    other = store.create("key-aes-2", spec)
    assert other.reference != stored.reference
    assert store.material("key-aes-2", other) != material


def test_registered_keys_round_trip_in_the_store_independent_form(
    store: KmipKeyStore, kmip_endpoint: KmipEndpoint
):
    aes = bytes(range(32))
    assert store.material("k-aes", store.register("k-aes", AES256, aes)) == aes

    rsa_key = rsa.generate_private_key(65537, 2048)
    traditional_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    stored = store.register("k-rsa", RSA2048, traditional_pem)
    rsa_der = store.material("k-rsa", stored)
    assert rsa_der == keymaterial.normalize(RSA2048, traditional_pem)
    loaded = serialization.load_der_private_key(rsa_der, None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == rsa_key.private_numbers()
    with plain_client(kmip_endpoint) as client:
        held = client.get(stored.reference)
    assert held.key_format_type.name == "PKCS_8" and bytes(held.value) == rsa_der

    # EC keys in SEC1 DER come back as PKCS#8; the alias prime256v1 is secp256r1.
    prime256v1 = KeySpec(KeyAlgorithm.EC, curve="prime256v1")
    for spec, curve in ((P256, ec.SECP256R1()), (P384, ec.SECP384R1()), (prime256v1, ec.SECP256R1())):
        sec1 = ec.generate_private_key(curve).private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        stored = store.register("k-ec", spec, sec1)
        assert store.material("k-ec", stored) == keymaterial.normalize(spec, sec1)


def test_rsa_and_ec_keys_are_created_here_and_registered(store: KmipKeyStore, kmip_endpoint: KmipEndpoint):
    rsa_ref = store.create("k-rsa", RSA2048)
    rsa_key = serialization.load_der_private_key(store.material("k-rsa", rsa_ref), None)
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and rsa_key.key_size == 2048
    ec_ref = store.create("k-ec", P384)
    ec_key = serialization.load_der_private_key(store.material("k-ec", ec_ref), None)
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey) and ec_key.curve.name == "secp384r1"
    with plain_client(kmip_endpoint) as client:
        held = client.get(ec_ref.reference)
    assert held.cryptographic_algorithm.name == "EC" and held.cryptographic_length == 384


def test_material_that_does_not_fit_its_spec_is_refused_before_reaching_the_server(store: KmipKeyStore):
    with pytest.raises(KeyMaterialInvalid) as wrong_size:
        store.register("k", AES256, bytes(16))
    assert wrong_size.value.code == "key-material-invalid"
    with pytest.raises(KeyMaterialInvalid) as unsupported:
        store.create("k", KeySpec(KeyAlgorithm.AES, 512))
    assert unsupported.value.code == "key-length-unsupported"
    with pytest.raises(KeyMaterialInvalid) as sealed:
        store.material("k", StoredKey("sealed", "AQ=="))
    assert sealed.value.code == "key-store-mismatch"


# --- delete, and the key-id binding -------------------------------------------------------------------


def test_delete_destroys_the_material_on_the_server(store: KmipKeyStore, kmip_endpoint: KmipEndpoint):
    stored = store.create("k-del", AES256)
    store.delete("k-del", stored)
    assert server_reason(kmip_endpoint, stored.reference) == "ITEM_NOT_FOUND"
    with pytest.raises(KeyStoreError) as gone:
        store.material("k-del", stored)
    assert gone.value.code == "kmip-key-not-found"
    assert stored.reference in gone.value.message
    assert f"{kmip_endpoint.host}:{kmip_endpoint.port}" in gone.value.message


def test_deleting_a_key_already_gone_from_the_server_succeeds_and_is_logged(
    store: KmipKeyStore, kmip_endpoint: KmipEndpoint, caplog: pytest.LogCaptureFixture
):
    stored = store.create("k-gone", AES256)
    with plain_client(kmip_endpoint) as client:
        client.destroy(stored.reference)
    with caplog.at_level(logging.INFO, logger="secl.central.kbs.kmipstore"):
        store.delete("k-gone", stored)
    assert any(
        "already gone" in r.getMessage() and stored.reference in r.getMessage() for r in caplog.records
    )


def test_delete_revokes_a_key_something_activated(store: KmipKeyStore, kmip_endpoint: KmipEndpoint):
    stored = store.create("k-active", AES256)
    with plain_client(kmip_endpoint) as client:
        client.activate(stored.reference)
        _, attributes = client.get_attributes(stored.reference, ["State"])
    assert attributes[0].attribute_value.value.name == "ACTIVE"
    store.delete("k-active", stored)
    assert server_reason(kmip_endpoint, stored.reference) == "ITEM_NOT_FOUND"


def test_a_reference_moved_to_another_key_neither_opens_nor_destroys(
    store: KmipKeyStore, kmip_endpoint: KmipEndpoint
):
    stored = store.register("key-1", AES256, bytes(32))
    with pytest.raises(KeyMaterialInvalid) as moved:
        store.material("key-2", stored)
    assert moved.value.code == "kmip-key-mismatch"
    assert "secl-kbs:key-2" in moved.value.message
    with pytest.raises(KeyMaterialInvalid):
        store.delete("key-2", stored)
    assert server_reason(kmip_endpoint, stored.reference) is None
    assert store.material("key-1", stored) == bytes(32)
    with pytest.raises(KeyStoreError) as unknown:
        store.material("key-1", StoredKey("kmip", "999999"))
    assert unknown.value.code == "kmip-key-not-found"


@pytest.mark.parametrize(("spec", "how"), [(AES256, "create"), (RSA2048, "create"), (AES256, "register")])
def test_a_store_that_fails_after_the_server_made_the_object_destroys_it(
    store: KmipKeyStore, kmip_endpoint: KmipEndpoint, monkeypatch: pytest.MonkeyPatch, spec: KeySpec, how: str
):
    made: list[str] = []

    def refuse(self: KmipKeyStore, client: Any, key_id: str, uid: str, spec: KeySpec) -> None:
        made.append(uid)
        raise KeyStoreError("provoked after the object was made", code="test-provoked")

    monkeypatch.setattr(KmipKeyStore, "_check_recorded", refuse)
    with pytest.raises(KeyStoreError) as failed:
        if how == "create":
            store.create("k-half", spec)
        else:
            store.register("k-half", spec, bytes(32))
    assert failed.value.code == "test-provoked"
    assert len(made) == 1
    assert server_reason(kmip_endpoint, made[0]) == "ITEM_NOT_FOUND"


def test_a_connection_lost_after_the_object_was_made_destroys_it_over_a_new_one(
    store: KmipKeyStore, kmip_endpoint: KmipEndpoint, monkeypatch: pytest.MonkeyPatch
):
    made: list[str] = []

    def drop(self: KmipKeyStore, client: Any, key_id: str, uid: str, spec: KeySpec) -> None:
        made.append(uid)
        client.proxy.socket.close()
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(KmipKeyStore, "_check_recorded", drop)
    with pytest.raises(KeyStoreUnavailable) as lost:
        store.create("k-lost", AES256)
    assert "closed the connection" in lost.value.message
    assert server_reason(kmip_endpoint, made[0]) == "ITEM_NOT_FOUND"


def test_the_server_recording_another_key_than_asked_fails_the_create(
    store: KmipKeyStore, kmip_endpoint: KmipEndpoint, monkeypatch: pytest.MonkeyPatch
):
    # A server that keeps an object differently from the request (here: we ask for 256 bits, then claim
    # to have wanted 128) is caught by the read-back, and the object does not stay.
    from secl.central.kbs import kmipstore

    original = kmipstore.KmipKeyStore._check_recorded
    made: list[str] = []

    def expect_128(self: KmipKeyStore, client: Any, key_id: str, uid: str, spec: KeySpec) -> None:
        made.append(uid)
        original(self, client, key_id, uid, AES128)

    monkeypatch.setattr(KmipKeyStore, "_check_recorded", expect_128)
    with pytest.raises(KeyStoreError) as mismatch:
        store.create("k-mismatch", AES256)
    assert mismatch.value.code == "kmip-object-mismatch"
    assert server_reason(kmip_endpoint, made[0]) == "ITEM_NOT_FOUND"


# --- no material in logs or messages ------------------------------------------------------------------


def test_no_material_reaches_the_logs_even_at_debug(store: KmipKeyStore, caplog: pytest.LogCaptureFixture):
    material = bytes(range(100, 132))
    with caplog.at_level(logging.DEBUG):
        stored = store.register("k-log", AES256, material)
        assert store.material("k-log", stored) == material
        with pytest.raises(KeyMaterialInvalid) as moved:
            store.material("k-other", stored)
        store.delete("k-log", stored)
    text = "\n".join(r.getMessage() for r in caplog.records) + moved.value.message + repr(store)
    for form in (material.hex(), material.hex().upper(), repr(material), str(list(material))):
        assert form not in text


# --- the server unreachable, hung, or refusing us -------------------------------------------------------


def test_a_server_that_is_not_running_is_unavailable_at_once(dead_kmip_endpoint: KmipEndpoint):
    store = store_for(dead_kmip_endpoint, timeout=5)
    started = time.monotonic()
    with pytest.raises(KeyStoreUnavailable) as down:
        store.material("k", StoredKey("kmip", "1"))
    assert time.monotonic() - started < 2
    assert down.value.code == "keystore-unavailable"
    message = down.value.message
    assert f"127.0.0.1:{dead_kmip_endpoint.port}" in message
    assert "Connection refused" in message and "kmip_host and kmip_port" in message
    with pytest.raises(KeyStoreUnavailable):
        store.create("k", AES256)
    with pytest.raises(KeyStoreUnavailable):
        store.delete("k", StoredKey("kmip", "1"))


def test_a_server_that_never_answers_times_out(kmip_pki: KmipPki, silent_listener: SilentListener):
    where = KmipEndpoint(
        "127.0.0.1",
        silent_listener.port,
        kmip_pki.ca_certificate,
        kmip_pki.client.certificate,
        kmip_pki.client.key,
    )
    store = store_for(where, timeout=1)
    started = time.monotonic()
    with pytest.raises(KeyStoreUnavailable) as hung:
        store.create("k", AES256)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 3, elapsed
    assert "no answer within 1 s" in hung.value.message
    assert f"127.0.0.1:{silent_listener.port}" in hung.value.message


def test_a_stopped_server_is_unavailable_and_its_keys_return_with_it(
    start_kmip_server: Any, kmip_pki: KmipPki
):
    server: KmipServer = start_kmip_server()
    store = store_for(endpoint(server))
    stored = store.register("k-restart", AES256, bytes(range(32)))
    server.stop()
    with pytest.raises(KeyStoreUnavailable) as down:
        store.material("k-restart", stored)
    assert f"{server.host}:{server.port}" in down.value.message
    server.start()
    assert store.material("k-restart", stored) == bytes(range(32))


def test_a_client_certificate_of_another_ca_is_refused(kmip_server: KmipServer, tmp_path: Path):
    _, intruder = make_foreign_client(tmp_path)
    store = store_for(endpoint(kmip_server, intruder))
    with pytest.raises(KeyStoreUnavailable) as refused:
        store.create("k", AES256)
    assert refused.value.code == "keystore-unavailable"
    assert "kmip_client_certificate" in refused.value.message
    assert f"{kmip_server.host}:{kmip_server.port}" in refused.value.message


@pytest.mark.parametrize(
    ("eku", "refusal"),
    [
        # OpenSSL on the server refuses a certificate whose extendedKeyUsage lacks clientAuth in the handshake;
        ((ExtendedKeyUsageOID.SERVER_AUTH,), "TLS handshake failed"),
        # without the extension OpenSSL lets it through and PyKMIP refuses each request.
        ((), "AUTHENTICATION_NOT_SUCCESSFUL"),
    ],
    ids=["server-auth-only", "no-eku"],
)
def test_a_client_certificate_without_client_auth_is_refused(
    kmip_server: KmipServer, kmip_pki: KmipPki, eku: tuple[Any, ...], refusal: str
):
    certificate = kmip_pki.issue(f"eku-{len(eku)}", eku=eku)
    store = store_for(endpoint(kmip_server, certificate))
    with pytest.raises(KeyStoreUnavailable) as refused:
        store.create("k", AES256)
    assert refused.value.code == "keystore-unavailable"
    assert refusal in refused.value.message
    assert "kmip_client_certificate" in refused.value.message and "clientAuth" in refused.value.message


def test_another_client_identity_cannot_use_the_central_s_keys(
    store: KmipKeyStore, kmip_server: KmipServer, kmip_pki: KmipPki
):
    stored = store.register("k-owned", AES256, bytes(32))
    other = store_for(endpoint(kmip_server, kmip_pki.issue("another-central")))
    with pytest.raises(KeyStoreError) as denied:
        other.material("k-owned", stored)
    assert denied.value.code == "kmip-permission-denied"
    assert "certificate subject must stay the same" in denied.value.message
    with pytest.raises(KeyStoreError):
        other.delete("k-owned", stored)
    assert store.material("k-owned", stored) == bytes(32)


def test_a_server_certificate_from_another_ca_or_for_another_name_is_refused(
    start_kmip_server: Any, kmip_pki: KmipPki, kmip_server: KmipServer, tmp_path: Path
):
    foreign_ca, _ = make_foreign_client(tmp_path)
    where = endpoint(kmip_server)
    wrong_ca = store_for(
        KmipEndpoint(where.host, where.port, foreign_ca, where.client_certificate, where.client_key)
    )
    with pytest.raises(KeyStoreUnavailable) as untrusted:
        wrong_ca.create("k", AES256)
    assert "server's certificate was refused" in untrusted.value.message
    assert "kmip_ca_certificate" in untrusted.value.message

    elsewhere: KmipServer = start_kmip_server(
        certificate=kmip_pki.issue("elsewhere", dns_names=("kmip.elsewhere.example",))
    )
    with pytest.raises(KeyStoreUnavailable) as misnamed:
        store_for(endpoint(elsewhere)).create("k", AES256)
    assert "server's certificate was refused" in misnamed.value.message
    assert "127.0.0.1" in misnamed.value.message


def test_unreadable_or_mismatched_client_credentials_fail_at_construction(
    kmip_endpoint: KmipEndpoint, kmip_pki: KmipPki, tmp_path: Path
):
    settings = store_for(kmip_endpoint).settings
    with pytest.raises(KeyStoreUnavailable) as missing:
        KmipKeyStore(
            KmipSettings(
                settings.host, settings.client_certificate, settings.client_key, tmp_path / "no-ca.pem"
            )
        )
    assert missing.value.code == "kmip-credentials-invalid"
    assert "kmip_ca_certificate" in missing.value.message and "no-ca.pem" in missing.value.message
    other: Credential = kmip_pki.issue("other")
    with pytest.raises(KeyStoreUnavailable) as mismatched:
        KmipKeyStore(
            KmipSettings(settings.host, settings.client_certificate, other.key, settings.ca_certificate)
        )
    assert mismatched.value.code == "kmip-credentials-invalid"
    assert "kmip_client_key" in mismatched.value.message


def test_tls_is_at_least_1_2_and_checks_the_server_name(store: KmipKeyStore):
    import ssl

    context = store._tls_context()
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED


def test_concurrent_requests_each_get_their_own_connection(store: KmipKeyStore):
    stored = [store.register(f"k-{i}", AES256, bytes([i]) * 32) for i in range(4)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                assert store.material(f"k-{i}", stored[i]) == bytes([i]) * 32
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors


# --- the store the configuration names ----------------------------------------------------------------


def empty_toml(directory: Path) -> Path:
    """An empty central.toml: the defaults, whatever /etc/secl/central.toml holds on this machine."""
    path = directory / "central.toml"
    path.write_text("")
    return path


def test_the_configuration_picks_the_sealed_store_by_default(tmp_path: Path):
    keys = tmp_path / "keys"
    write_kek(keys / "kek", new_kek(), make_current=True)
    config = load_config(empty_toml(tmp_path), environ={})
    assert config.key_store == "sealed"
    assert isinstance(key_store_from_config(config, keys), SealedKeyStore)


def test_the_configuration_picks_the_kmip_store(kmip_endpoint: KmipEndpoint, tmp_path: Path):
    toml = tmp_path / "central.toml"
    toml.write_text(
        'key_store = "kmip"\n'
        f'kmip_host = "{kmip_endpoint.host}"\n'
        f"kmip_port = {kmip_endpoint.port}\n"
        f'kmip_ca_certificate = "{kmip_endpoint.ca_certificate}"\n'
        "kmip_timeout_seconds = 3\n"
    )
    keys = tmp_path / "keys"
    (keys / "kmip").mkdir(parents=True)
    # Relative paths are taken in the central's key directory; environment variables complete the file.
    (keys / "kmip" / "client.pem").write_bytes(kmip_endpoint.client_certificate.read_bytes())
    (keys / "kmip" / "client.key").write_bytes(kmip_endpoint.client_key.read_bytes())
    environ = {
        "SECL_CENTRAL_KMIP_CLIENT_CERTIFICATE": "kmip/client.pem",
        "SECL_CENTRAL_KMIP_CLIENT_KEY": "kmip/client.key",
    }
    store = key_store_from_config(load_config(toml, environ=environ), keys)
    assert isinstance(store, KmipKeyStore) and store.name == "kmip"
    assert store.settings.client_key == keys / "kmip" / "client.key"
    assert store.settings.timeout_seconds == 3
    stored = store.create("k-config", AES256)
    assert len(store.material("k-config", stored)) == 32
    store.delete("k-config", stored)


def test_a_half_configured_kmip_store_names_what_is_missing(tmp_path: Path):
    toml = empty_toml(tmp_path)
    config = load_config(
        toml, environ={"SECL_CENTRAL_KEY_STORE": "kmip", "SECL_CENTRAL_KMIP_HOST": "kmip.example"}
    )
    with pytest.raises(ConfigError) as half:
        key_store_from_config(config, tmp_path / "keys")
    message = str(half.value)
    assert "kmip_client_certificate, kmip_client_key, kmip_ca_certificate" in message
    assert "SECL_CENTRAL_KMIP_CLIENT_KEY" in message and "kmip_host" not in message.split("needs")[1]
    with pytest.raises(ConfigError, match="key_store must be one of sealed, kmip, not 'vault'"):
        key_store_from_config(load_config(toml, environ={}, overrides={"key_store": "vault"}), tmp_path)
    with pytest.raises(ConfigError, match="kmip_port must be a TCP port"):
        key_store_from_config(
            load_config(
                toml,
                environ={},
                overrides={
                    "key_store": "kmip", "kmip_host": "h", "kmip_port": 70000, "kmip_client_certificate": "c",
                    "kmip_client_key": "k", "kmip_ca_certificate": "a",
                },
            ),
            tmp_path,
        )  # fmt: skip


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_central_without_pykmip_runs_on_the_sealed_store_and_says_what_kmip_needs(tmp_path: Path):
    keys = tmp_path / "keys"
    write_kek(keys / "kek", new_kek(), make_current=True)
    result = _python(
        f"""
        import sys
        sys.modules["kmip"] = None  # as if the kmip extra were not installed
        import secl.central
        from secl.central.config import ConfigError, load_config
        from secl.central.kbs.keystores import key_store_from_config
        from pathlib import Path
        keys = Path({str(keys)!r})
        toml = Path({str(empty_toml(tmp_path))!r})
        store = key_store_from_config(load_config(toml, environ={{}}), keys)
        print(store.name)
        config = load_config(toml, environ={{}}, overrides={{
            "key_store": "kmip", "kmip_host": "h", "kmip_client_certificate": "c", "kmip_client_key": "k",
            "kmip_ca_certificate": "a"}})
        try:
            key_store_from_config(config, keys)
        except ConfigError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "sealed"
    assert "needs PyKMIP" in lines[1] and "pip install 'secl[central,kmip]'" in lines[1]


def test_the_sealed_store_does_not_import_pykmip(tmp_path: Path):
    keys = tmp_path / "keys"
    write_kek(keys / "kek", new_kek(), make_current=True)
    result = _python(
        f"""
        import sys
        import secl.central
        from secl.central.config import load_config
        from secl.central.kbs.keystores import key_store_from_config
        from pathlib import Path
        toml = Path({str(empty_toml(tmp_path))!r})
        key_store_from_config(load_config(toml, environ={{}}), Path({str(keys)!r}))
        print(sorted(m for m in sys.modules if m == "kmip" or m.startswith("kmip.")))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
