"""The central server's configuration: a commented TOML file, overridden by SECL_CENTRAL_* variables.

Precedence, lowest first: built-in defaults, the TOML file (``/etc/secl/central.toml`` unless
``SECL_CENTRAL_CONFIG`` names another), environment variables (``SECL_CENTRAL_DATABASE_URL`` and so on,
one per key), then an explicit mapping passed to :func:`load_config` (tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from secl.settings import ConfigError, load_settings

DEFAULT_CONFIG_PATH = Path("/etc/secl/central.toml")
ENV_PREFIX = "SECL_CENTRAL_"


@dataclass(frozen=True, slots=True)
class CentralConfig:
    # Where setup writes keys and certificates, and where the embedded SQLite database lives.
    state_dir: Path = Path("/var/lib/secl/central")
    # SQLAlchemy URL. Empty: the embedded SQLite file <state_dir>/central.db.
    database_url: str = ""
    # What the TLS certificate is issued for, and where the server listens.
    hostname: str = "localhost"
    listen: str = "0.0.0.0:8443"
    # Lifetime of the JWTs POST /aas/v1/token issues.
    token_ttl_seconds: int = 3600
    # Failed logins before an account is locked, and for how long.
    lockout_threshold: int = 5
    lockout_seconds: int = 900
    # Largest request body accepted, in bytes.
    max_body_bytes: int = 1024 * 1024
    # Lifetime of host and service certificates issued through enrollment tokens.
    certificate_days: int = 365
    # The Privacy CA accepts only EKs registered through /hvs/v2/tpm-endorsements (chain or not).
    require_ek_registration: bool = False
    # Hosts whose last boot (manifest, ~260 KiB each) each central process keeps in memory, so their
    # next report skips parsing and replaying the event log. 0 keeps none.
    verifier_memo_hosts: int = 1024
    # Where the key broker keeps key material: "sealed" (embedded: sealed under a key-encryption key in
    # <state_dir>/keys/kek) or "kmip" (a KMIP server, reached over mutual TLS with the kmip_* settings).
    key_store: str = "sealed"
    # The KMIP server, and the central's client identity there (PEM files; relative paths are taken in
    # <state_dir>/keys). Empty: not set; key_store = "kmip" needs all of them.
    kmip_host: str = ""
    kmip_port: int = 5696
    kmip_client_certificate: str = ""
    kmip_client_key: str = ""
    kmip_ca_certificate: str = ""
    # Bound on connecting to the KMIP server, the TLS handshake and each of its answers.
    kmip_timeout_seconds: int = 10
    # The workload service keeps a key it obtained for a host (wrapped to that host's TPM) this long, as
    # SecL's WLS does, and serves it again only while the report behind it is young enough for its policy.
    key_cache_seconds: int = 300
    # The CA bundle (PEM; relative paths are taken in <state_dir>/keys) that a remote key broker's TLS
    # certificate must chain to, for image flavors whose key URL names another central. Empty: keys are
    # fetched only from this central's own broker. TLS verification is never turned off.
    wls_key_broker_ca: str = ""
    # Bound on connecting to a remote key broker and on its answer.
    wls_key_broker_timeout_seconds: int = 10
    log_level: str = "INFO"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'central.db'}"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    def to_mapping(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> CentralConfig:
    """Build the configuration; a missing default file is fine, a missing named file is an error."""
    return load_settings(
        CentralConfig(),
        default_path=DEFAULT_CONFIG_PATH,
        env_prefix=ENV_PREFIX,
        path=path,
        environ=environ,
        overrides=overrides,
    )


__all__ = ["CentralConfig", "ConfigError", "load_config"]
