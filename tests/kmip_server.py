"""pytest fixtures for a real KMIP server: PyKMIP's ``pykmip-server``, with a throwaway PKI.

What PyKMIP 0.11's server needs (found by running it with SQLAlchemy 2.1, cryptography 51, Python 3.11):

- ``server.conf`` with a ``[server]`` section holding all of ``hostname``, ``port``, ``certificate_path``,
  ``key_path``, ``ca_path`` and ``auth_suite`` (missing one is a startup error). ``auth_suite = TLS1.2``
  makes it speak TLS 1.2 only, with KMIP's TLS 1.2 cipher list (ECDHE-ECDSA suites among them, so the
  EC P-256 certificates made here work).
- Client certificates: OpenSSL on the server refuses, in the handshake, one whose extendedKeyUsage lacks
  clientAuth; with ``enable_tls_client_auth = True`` PyKMIP also answers every request from a certificate
  *without* that extension with *Authentication Not Successful*. The certificates here carry
  ``serverAuth, clientAuth``. The client identity, owner of every object it creates, is the certificate's
  single common name: a certificate of the same CA with another CN gets *Permission Denied* on them.
- ``database_path``: the SQLite file of the objects; without it the server uses ``/tmp/pykmip.database``,
  shared by every server on the machine.
- ``policy_path``: a directory of operation-policy JSON files. Without it the policy monitor lists the
  server's *working directory*; an empty directory of our own keeps it quiet.
- ``-l server.log``: without it the server logs to ``/var/log/pykmip/server.log``.
- On stderr it prints CryptographyDeprecationWarnings (TripleDES, Camellia, ARC4, OFB, CFB moved to
  ``decrepit``) and an SQLAlchemy ``SAWarning`` (TypeDecorator ``EnumType`` without ``cache_ok``): harmless,
  kept in ``server.stderr``. Its client, imported in a process, warns once (``MovedIn20Warning``,
  ``declarative_base``) and, with its own socket setup, ``DeprecationWarning: ssl.PROTOCOL_TLS``.
- Stopping: SIGINT ends the accept loop at once (its handler raises KeyboardInterrupt); SIGTERM only sets
  a flag that the 10 s accept timeout notices. The server also forks a ``multiprocessing`` manager and
  the policy monitor, so it runs in its own session and the fixture signals the whole process group.
- It completes an mTLS handshake about 1 s after starting here; the fixture polls with full handshakes
  until then, with a 15 s deadline, and fails with the end of its logs if it exits or misses the deadline.

A missing PyKMIP is a failure with the install hint, never a skip: KMIP tests must not pass without a
server.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

INSTALL_HINT = "pip install -e '.[test]' (the test extra includes kmip: PyKMIP, pykmip on PyPI)"
READY_SECONDS = 15.0


@dataclass(frozen=True)
class Credential:
    """A certificate and its private key, as PEM files."""

    certificate: Path
    key: Path


@dataclass(frozen=True)
class KmipPki:
    """A throwaway CA and what it issued: the server's certificate and the central's client certificate."""

    directory: Path
    ca_certificate: Path
    server: Credential
    client: Credential
    _ca_key: ec.EllipticCurvePrivateKey = field(repr=False)
    _ca_name: x509.Name = field(repr=False)

    def issue(
        self,
        name: str,
        *,
        eku: tuple[x509.ObjectIdentifier, ...] | None = None,
        dns_names: tuple[str, ...] | None = None,
    ) -> Credential:
        """Another certificate of this CA (``eku`` None: serverAuth and clientAuth; ``dns_names`` None:
        localhost and 127.0.0.1)."""
        return _issue(self.directory, name, self._ca_key, self._ca_name, eku=eku, dns_names=dns_names)


def make_pki(directory: Path) -> KmipPki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name, ca_certificate = _make_ca(directory, "secl-test KMIP CA")
    server = _issue(directory, "localhost", ca_key, ca_name)
    client = _issue(directory, "secl-central", ca_key, ca_name)
    return KmipPki(directory, ca_certificate, server, client, ca_key, ca_name)


def make_foreign_client(directory: Path) -> tuple[Path, Credential]:
    """Another CA's certificate and a client certificate it issued, which the KMIP server must refuse."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name, ca_certificate = _make_ca(directory, "not the KMIP server's CA")
    return ca_certificate, _issue(directory, "intruder", ca_key, ca_name)


def _make_ca(directory: Path, common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Name, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{_file_stem(common_name)}-ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key, name, path


def _issue(
    directory: Path,
    common_name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    *,
    eku: tuple[x509.ObjectIdentifier, ...] | None = None,
    dns_names: tuple[str, ...] | None = None,
) -> Credential:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = (
        [x509.DNSName(n) for n in dns_names]
        if dns_names is not None
        else [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    now = datetime.datetime.now(datetime.UTC)
    usages = eku if eku is not None else (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    stem = _file_stem(common_name)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return Credential(cert_path, key_path)


def _file_stem(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (at the moment it is returned)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_binary() -> Path:
    """``pykmip-server`` next to this interpreter (the venv's bin); fail with the install hint if absent."""
    try:
        import kmip  # noqa: F401
    except ImportError:
        pytest.fail(f"PyKMIP is not installed: {INSTALL_HINT}; KMIP tests never skip", pytrace=False)
    binary = Path(sys.executable).parent / "pykmip-server"
    if not binary.exists():
        found = shutil.which("pykmip-server")
        if found is None:
            pytest.fail(f"pykmip-server not found next to {sys.executable}: {INSTALL_HINT}", pytrace=False)
        binary = Path(found)
    return binary


class KmipServer:
    """A ``pykmip-server`` in its own directory: start, stop and restart it on the same port and database."""

    def __init__(
        self, directory: Path, pki: KmipPki, *, host: str = "127.0.0.1", certificate: Credential | None = None
    ) -> None:
        self.directory = directory
        self.pki = pki
        self.certificate = certificate or pki.server
        self.host = host
        self.port = free_port()
        self.database = directory / "pykmip.db"
        self.log = directory / "server.log"
        self.stderr_log = directory / "server.stderr"
        self.conf = directory / "server.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        (directory / "policies").mkdir(parents=True, exist_ok=True)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _write_conf(self) -> None:
        self.conf.write_text(
            "[server]\n"
            f"hostname = {self.host}\n"
            f"port = {self.port}\n"
            f"certificate_path = {self.certificate.certificate}\n"
            f"key_path = {self.certificate.key}\n"
            f"ca_path = {self.pki.ca_certificate}\n"
            "auth_suite = TLS1.2\n"
            "enable_tls_client_auth = True\n"
            f"policy_path = {self.directory / 'policies'}\n"
            f"database_path = {self.database}\n"
            "logging_level = INFO\n"
        )

    def start(self) -> None:
        """Start the server and wait until it completes an mTLS handshake; retry on another port if the
        chosen one got taken meanwhile."""
        binary = server_binary()
        last = ""
        for _ in range(3):
            self._write_conf()
            with self.stderr_log.open("ab") as err:
                self._proc = subprocess.Popen(
                    [str(binary), "-f", str(self.conf), "-l", str(self.log)],
                    cwd=self.directory,
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    # Its own process group: the server forks a multiprocessing manager and the policy
                    # monitor, and stop() signals them together.
                    start_new_session=True,
                )
            failure = self._wait_ready()
            if failure is None:
                return
            last = failure
            self.stop()
            if "bind" in failure.lower():
                self.port = free_port()
                continue
            break
        pytest.fail(f"pykmip-server did not start: {last}", pytrace=False)

    def _wait_ready(self) -> str | None:
        assert self._proc is not None
        context = self.client_context()
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return f"exited with {self._proc.returncode}:\n{self._tail()}"
            try:
                with (
                    socket.create_connection((self.host, self.port), timeout=1) as raw,
                    context.wrap_socket(raw, server_hostname="localhost"),
                ):
                    return None
            except (OSError, ssl.SSLError):
                time.sleep(0.1)
        return f"no TLS handshake on {self.host}:{self.port} within {READY_SECONDS:.0f} s:\n{self._tail()}"

    def client_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # Readiness only: the chain is checked, the name is not (a test may give the server a wrong one).
        context.check_hostname = False
        context.load_verify_locations(self.pki.ca_certificate)
        context.load_cert_chain(self.pki.client.certificate, self.pki.client.key)
        return context

    def _tail(self) -> str:
        text = ""
        for path in (self.stderr_log, self.log):
            if path.exists():
                text += f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:])
        return text

    def stop(self) -> None:
        """SIGINT to the server's process group, SIGKILL after 10 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGINT)
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        # The manager and monitor children may outlive the main process by a moment: end the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass(frozen=True)
class KmipEndpoint:
    """What a KMIP client needs: where the server is and the files of an mTLS client."""

    host: str
    port: int
    ca_certificate: Path
    client_certificate: Path
    client_key: Path

    def settings(self, timeout_seconds: int = 5) -> dict[str, object]:
        """The central's configuration keys for this endpoint (``key_store = "kmip"``)."""
        return {
            "key_store": "kmip",
            "kmip_host": self.host,
            "kmip_port": self.port,
            "kmip_client_certificate": str(self.client_certificate),
            "kmip_client_key": str(self.client_key),
            "kmip_ca_certificate": str(self.ca_certificate),
            "kmip_timeout_seconds": timeout_seconds,
        }


def endpoint(server: KmipServer, client: Credential | None = None) -> KmipEndpoint:
    client = client or server.pki.client
    return KmipEndpoint(server.host, server.port, server.pki.ca_certificate, client.certificate, client.key)


class SilentListener:
    """A TCP port that accepts connections and never answers: a hung KMIP server, to test timeouts."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        self.port: int = self._socket.getsockname()[1]
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self._socket.settimeout(0.1)
        while not self._closed.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        for connection in self._held:
            connection.close()
        self._socket.close()


@pytest.fixture(scope="session")
def kmip_pki(tmp_path_factory: pytest.TempPathFactory) -> KmipPki:
    return make_pki(tmp_path_factory.mktemp("kmip-pki"))


@pytest.fixture(scope="session")
def kmip_server(kmip_pki: KmipPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KmipServer]:
    """One pykmip-server for the session. Tests must not stop it: ``start_kmip_server`` makes
    one they may stop."""
    server = KmipServer(tmp_path_factory.mktemp("kmip-server"), kmip_pki)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kmip_endpoint(kmip_server: KmipServer) -> KmipEndpoint:
    """The session server, seen by the central's client certificate."""
    if not kmip_server.running:
        pytest.fail(f"the session's pykmip-server has died:\n{kmip_server._tail()}", pytrace=False)
    return endpoint(kmip_server)


@pytest.fixture
def start_kmip_server(kmip_pki: KmipPki, tmp_path: Path) -> Iterator[Callable[..., KmipServer]]:
    """Start pykmip-servers of this test alone (same PKI; ``certificate=`` another server certificate),
    which the test may stop and restart; all are stopped at its end."""
    started: list[KmipServer] = []

    def start(certificate: Credential | None = None) -> KmipServer:
        server = KmipServer(tmp_path / f"kmip-server-{len(started)}", kmip_pki, certificate=certificate)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def dead_kmip_endpoint(kmip_pki: KmipPki) -> KmipEndpoint:
    """Valid credentials pointing at a port nothing listens on."""
    return KmipEndpoint(
        "127.0.0.1", free_port(), kmip_pki.ca_certificate, kmip_pki.client.certificate, kmip_pki.client.key
    )


@pytest.fixture
def silent_listener() -> Iterator[SilentListener]:
    listener = SilentListener()
    try:
        yield listener
    finally:
        listener.close()
