"""A host daemon's enrollment state: the files enrollment writes into its state directory, and how.

Each daemon has a state directory of its own (the trust agent's is ``/var/lib/secl/trustagent``);
:class:`StateFiles` names the files in it, so the enrollment code and the daemon that reads them agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StateFiles", "write_state_file"]


@dataclass(frozen=True, slots=True)
class StateFiles:
    """The files `setup` writes into the state directory and `run` reads."""

    directory: Path

    @property
    def central_ca(self) -> Path:
        """The central's root CA (PEM), pinned by its SHA-384 fingerprint; client certificates chain to it."""
        return self.directory / "central-ca.pem"

    @property
    def central(self) -> Path:
        """JSON: the central URL and CA fingerprint setup used."""
        return self.directory / "central.json"

    @property
    def tls_key(self) -> Path:
        return self.directory / "tls-key.pem"

    @property
    def tls_cert(self) -> Path:
        return self.directory / "tls-cert.pem"

    @property
    def aik_cert(self) -> Path:
        """The AIK certificate the central's Privacy CA issued (PEM), once provisioned."""
        return self.directory / "aik-cert.pem"

    @property
    def central_client(self) -> Path:
        """The SHA-256 (hex) of the central's TLS key: the one client the agent answers (pinned by setup)."""
        return self.directory / "central-client.sha256"

    @property
    def registration(self) -> Path:
        """JSON: the host name and connection string this agent registered at the central."""
        return self.directory / "registration.json"


def write_state_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` atomically, created with ``mode`` (never briefly readable by others)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
