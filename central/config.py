"""The central server's configuration: a commented TOML file, overridden by SECL_CENTRAL_* variables.

Precedence, lowest first: built-in defaults, the TOML file (``/etc/secl/central.toml`` unless
``SECL_CENTRAL_CONFIG`` names another), environment variables (``SECL_CENTRAL_DATABASE_URL`` and so on,
one per key), then an explicit mapping passed to :func:`load_config` (tests).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_PATH = Path("/etc/secl/central.toml")
ENV_PREFIX = "SECL_CENTRAL_"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


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
    log_level: str = "INFO"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'central.db'}"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    def to_mapping(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_INT_KEYS = {f.name for f in fields(CentralConfig) if f.type == "int"}
_PATH_KEYS = {f.name for f in fields(CentralConfig) if f.type == "Path"}


def _coerce(key: str, value: Any) -> Any:
    if key in _INT_KEYS:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be an integer, not {value!r}") from None
        if number <= 0:
            raise ConfigError(f"{key} must be positive, not {number}")
        return number
    if key in _PATH_KEYS:
        return Path(value)
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, not {value!r}")
    return value


def _apply(config: CentralConfig, values: Mapping[str, Any], source: str) -> CentralConfig:
    known = {f.name for f in fields(CentralConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}")
    return replace(config, **{k: _coerce(k, v) for k, v in values.items()})


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> CentralConfig:
    """Build the configuration; a missing default file is fine, a missing named file is an error."""
    environ = os.environ if environ is None else environ
    config = CentralConfig()
    named = path or (Path(environ[f"{ENV_PREFIX}CONFIG"]) if f"{ENV_PREFIX}CONFIG" in environ else None)
    file = named or DEFAULT_CONFIG_PATH
    if file.exists():
        try:
            values = tomllib.loads(file.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        config = _apply(config, values, str(file))
    elif named is not None:
        raise ConfigError(f"{file}: no such configuration file")
    from_env = {
        key.removeprefix(ENV_PREFIX).lower(): value
        for key, value in environ.items()
        if key.startswith(ENV_PREFIX) and key != f"{ENV_PREFIX}CONFIG"
    }
    config = _apply(config, from_env, "environment")
    if overrides:
        config = _apply(config, overrides, "overrides")
    return config
