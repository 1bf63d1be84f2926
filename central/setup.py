"""``secl-central setup``: create, once, every key and certificate the central needs, and the database.

This is the bootstrap command only; the running central reads what it made through :mod:`secl.central.keys`.
Idempotent: what exists is loaded and checked, never replaced (replacing the root CA would orphan every
enrolled host); only what is missing is created. Directories are 0700 and key files 0600, created with
those modes (no window in which they are readable), and owned by the service user when one is given.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from secl.central.aas import service as aas_service
from secl.central.aas.tokens import generate_signing_key
from secl.central.cms import pki
from secl.central.config import CentralConfig
from secl.central.flavortemplates.service import ensure_default_templates
from secl.central.kbs.sealedstore import new_kek, write_kek
from secl.central.keyfiles import KeyFiles
from secl.central.keys import load_issuer
from secl.central.store.db import Database
from secl.central.store.migrate import upgrade

ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class SetupResult:
    root_ca_fingerprint_sha384: str
    admin_credential: Path | None  # where the first administrator's password was written, if created now
    created: tuple[str, ...]  # the files made by this run


def write_private(path: Path, data: bytes, owner: str | None = None) -> None:
    """Write a secret file that is 0600 from its first byte (O_EXCL: never overwrite)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    _chown(path, owner)


def write_public(path: Path, data: bytes, owner: str | None = None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    _chown(path, owner)


def _chown(path: Path, owner: str | None) -> None:
    if owner:
        shutil.chown(path, user=owner, group=None)


def _key_pem(key: pki.CertificateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


class _Setup:
    def __init__(self, config: CentralConfig, owner: str | None) -> None:
        self.config = config
        self.files = KeyFiles(config.keys_dir)
        self.owner = owner
        self.created: list[str] = []

    def directories(self) -> None:
        for directory in (self.config.state_dir, self.config.keys_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
            _chown(directory, self.owner)

    def issuer(self, cert: Path, key: Path, make: Callable[[], pki.Issuer]) -> pki.Issuer:
        if cert.exists() and key.exists():
            return load_issuer(cert, key)
        if cert.exists() or key.exists():
            raise FileExistsError(f"only one of {cert} and {key} exists; restore the other or remove both")
        issuer = make()
        write_private(key, _key_pem(issuer.key), self.owner)
        write_public(cert, self._chain(issuer), self.owner)
        self.created += [str(key), str(cert)]
        return issuer

    def _chain(self, issuer: pki.Issuer) -> bytes:
        if cert_is_self_signed(issuer.certificate):
            return _cert_pem(issuer.certificate)
        return _cert_pem(
            issuer.certificate, x509.load_pem_x509_certificate(self.files.root_ca_cert.read_bytes())
        )

    def token_key(self) -> None:
        if not self.files.token_signing_key.exists():
            write_private(self.files.token_signing_key, _key_pem(generate_signing_key()), self.owner)
            self.created.append(str(self.files.token_signing_key))

    def key_encryption_key(self) -> None:
        """The key broker's first KEK (keys/kek/<id>.key, 0600): what the embedded key store seals under."""
        directory = self.files.keys_dir / "kek"
        if (directory / "current").exists():
            return
        write_kek(directory, new_kek(), make_current=True)
        for path in (directory, *directory.iterdir()):
            _chown(path, self.owner)
        self.created.append(str(directory))

    def endorsement_store(self) -> None:
        if not self.files.endorsement_cas.exists():
            # Operators add their TPM vendors' EK CA certificates here (PEM, concatenated).
            write_public(self.files.endorsement_cas, b"", self.owner)
            self.created.append(str(self.files.endorsement_cas))

    def database_and_admin(self) -> Path | None:
        database = Database(self.config.sqlalchemy_url)
        try:
            upgrade(database.engine)
            with database.sessions() as session:
                # Refreshed on every run, so a new release's default templates reach an existing central.
                ensure_default_templates(session)
            if database.is_sqlite and self.owner:
                _chown(Path(database.engine.url.database or ""), self.owner)
            if self.files.admin_credential.exists():
                return None
            password = secrets.token_urlsafe(24)
            with database.sessions() as session:
                _, created = aas_service.ensure_admin(session, ADMIN_USERNAME, password)
            if not created:
                return None
            write_private(self.files.admin_credential, f"{ADMIN_USERNAME}:{password}\n".encode(), self.owner)
            self.created.append(str(self.files.admin_credential))
            return self.files.admin_credential
        finally:
            database.dispose()


def cert_is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def run_setup(config: CentralConfig, *, owner: str | None = None) -> SetupResult:
    setup = _Setup(config, owner)
    setup.directories()
    files = setup.files
    root = setup.issuer(files.root_ca_cert, files.root_ca_key, pki.create_root_ca)
    hostnames = list(dict.fromkeys([config.hostname, "localhost", "127.0.0.1"]))
    setup.issuer(
        files.tls_cert,
        files.tls_key,
        lambda: pki.create_tls_certificate(root, hostnames, config.certificate_days),
    )
    setup.token_key()
    setup.issuer(
        files.flavor_signing_cert,
        files.flavor_signing_key,
        lambda: pki.create_signing_certificate(root, "secl Flavor Signing", ec.SECP384R1()),
    )
    setup.issuer(
        files.report_signing_cert,
        files.report_signing_key,
        lambda: pki.create_signing_certificate(root, "secl Report Signing", ec.SECP256R1()),
    )
    setup.issuer(
        files.privacy_ca_cert, files.privacy_ca_key, lambda: pki.create_sub_ca(root, "secl Privacy CA")
    )
    setup.issuer(files.tag_ca_cert, files.tag_ca_key, lambda: pki.create_sub_ca(root, "secl Tag CA"))
    setup.key_encryption_key()
    setup.endorsement_store()
    credential = setup.database_and_admin()
    return SetupResult(pki.fingerprint_sha384(root.certificate), credential, tuple(setup.created))
