"""The key store the central's configuration names: ``key_store = "sealed"`` (default) or ``"kmip"``.

The KMIP store's module, and PyKMIP with it, is imported only when ``key_store = "kmip"``: a central
installed without the ``kmip`` extra runs on the sealed store.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from secl.central.config import CentralConfig, ConfigError
from secl.central.kbs.keystore import KeyStore, KeyStoreUnavailable
from secl.central.kbs.sealedstore import SealedKeyStore

KEY_STORES = ("sealed", "kmip")
#: The settings ``key_store = "kmip"`` cannot do without (port and timeout have defaults).
KMIP_REQUIRED = ("kmip_host", "kmip_client_certificate", "kmip_client_key", "kmip_ca_certificate")
KMIP_INSTALL_HINT = "pip install 'secl[central,kmip]' (PyKMIP, pykmip on PyPI)"


def key_store_from_config(config: CentralConfig, keys_dir: Path) -> KeyStore:
    """The configured store. Settings that cannot work raise :class:`ConfigError` naming them; a store
    whose files cannot be loaded (the KEKs, the KMIP client credentials) raises ``KeyStoreUnavailable``."""
    if config.key_store == "sealed":
        return SealedKeyStore.from_directory(keys_dir / "kek")
    if config.key_store != "kmip":
        raise ConfigError(f"key_store must be one of {', '.join(KEY_STORES)}, not {config.key_store!r}")
    missing = [name for name in KMIP_REQUIRED if not getattr(config, name).strip()]
    if missing:
        raise ConfigError(
            f'key_store = "kmip" needs {", ".join(missing)}: set them in central.toml or as '
            f"{', '.join('SECL_CENTRAL_' + name.upper() for name in missing)}"
        )
    if not 0 < config.kmip_port < 65536:
        raise ConfigError(f"kmip_port must be a TCP port (1-65535), not {config.kmip_port}")
    try:
        from secl.central.kbs.kmipstore import KmipKeyStore, KmipSettings
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] != "kmip":
            raise
        raise ConfigError(
            f'key_store = "kmip" needs PyKMIP, which is not installed: {KMIP_INSTALL_HINT}'
        ) from None
    settings = KmipSettings(
        host=config.kmip_host.strip(),
        port=config.kmip_port,
        client_certificate=keys_dir / config.kmip_client_certificate,
        client_key=keys_dir / config.kmip_client_key,
        ca_certificate=keys_dir / config.kmip_ca_certificate,
        timeout_seconds=config.kmip_timeout_seconds,
    )
    return KmipKeyStore(settings)


class KeyStores:
    """The central's key stores, each opened on first use: the configured one for new keys, and whichever
    one holds an existing key (a key sealed before the central moved to KMIP stays readable)."""

    def __init__(self, config: CentralConfig, keys_dir: Path) -> None:
        self._config = config
        self._keys_dir = keys_dir
        self._opened: dict[str, KeyStore] = {}
        self._lock = threading.Lock()

    @property
    def active(self) -> KeyStore:
        """The store new keys go to (``key_store`` in central.toml)."""
        return self.named(self._config.key_store)

    def named(self, name: str) -> KeyStore:
        """The store ``name``; one whose settings cannot work (a KMIP key on a central whose KMIP settings are
        gone, a half-configured ``key_store = "kmip"``) is unavailable, with the settings it lacks."""
        with self._lock:
            store = self._opened.get(name)
            if store is None:
                config = (
                    self._config if name == self._config.key_store else replace(self._config, key_store=name)
                )
                try:
                    store = key_store_from_config(config, self._keys_dir)
                except ConfigError as exc:
                    raise KeyStoreUnavailable(
                        f"the {name} key store is not configured: {exc}", code="keystore-not-configured"
                    ) from None
                self._opened[name] = store
            return store
