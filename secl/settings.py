"""Settings files for secl's daemons: a commented TOML file, overridden by environment variables.

Both the central and the trust agent describe their settings as a frozen dataclass with defaults; this
module fills one in. Precedence, lowest first: the dataclass defaults, the TOML file (the default path
unless ``<PREFIX>CONFIG`` names another), environment variables ``<PREFIX><KEY>`` (one per setting), then
explicit overrides (tests). Fields typed ``int`` must be positive integers, ``bool`` fields true or false
(``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0`` in the environment), ``Path`` fields
become paths, everything else must be a string; an unknown key is an error that names its source, so a typo in
/etc/secl/*.toml stops the daemon instead of being ignored.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


def load_settings(
    defaults: T,
    *,
    default_path: Path,
    env_prefix: str,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Build the settings; a missing default file is fine, a missing named file is an error."""
    environ = os.environ if environ is None else environ
    config = defaults
    config_variable = f"{env_prefix}CONFIG"
    named = path or (Path(environ[config_variable]) if config_variable in environ else None)
    file = named or default_path
    if file.exists():
        try:
            values = tomllib.loads(file.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        config = _apply(config, values, str(file))
    elif named is not None:
        raise ConfigError(f"{file}: no such configuration file")
    from_env = {
        key.removeprefix(env_prefix).lower(): value
        for key, value in environ.items()
        if key.startswith(env_prefix) and key != config_variable
    }
    config = _apply(config, from_env, "environment")
    if overrides:
        config = _apply(config, overrides, "overrides")
    return config


def _apply(config: T, values: Mapping[str, Any], source: str) -> T:
    types = {f.name: f.type for f in fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}")
    return replace(config, **{k: _coerce(k, v, types[k]) for k, v in values.items()})  # type: ignore[type-var]


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    # With postponed annotations the field types are the strings "int", "Path", "str", "bool".
    if annotation in ("bool", bool):
        if isinstance(value, bool):
            return value
        word = value.strip().lower() if isinstance(value, str) else None
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ConfigError(f"{key} must be true or false, not {value!r}")
    if annotation in ("int", int):
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be an integer, not {value!r}") from None
        if number <= 0:
            raise ConfigError(f"{key} must be positive, not {number}")
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, not {value!r}")
    return Path(value) if annotation in ("Path", Path) else value
