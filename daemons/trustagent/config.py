"""The trust agent's configuration: a commented TOML file, overridden by SECL_TRUSTAGENT_* variables.

Precedence, lowest first: built-in defaults, the TOML file (``/etc/secl/trustagent.toml`` unless
``SECL_TRUSTAGENT_CONFIG`` names another), environment variables (``SECL_TRUSTAGENT_TCTI`` and so on, one
per key), then an explicit mapping passed to :func:`load_config` (tests). The paths of every evidence
source (event logs, SMBIOS, EFI variables, os-release) are settings, so tests point them at corpus data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from secl.host.statefiles import StateFiles
from secl.settings import ConfigError, load_settings

DEFAULT_CONFIG_PATH = Path("/etc/secl/trustagent.toml")
ENV_PREFIX = "SECL_TRUSTAGENT_"

#: The AIK: an RSA-2048 restricted signing key, a primary key of the endorsement hierarchy. A primary key
#: is derived from the hierarchy seed and its template, so every process (setup, run) gets the same AIK
#: back without storing a key blob, and its Privacy CA certificate stays valid across restarts.
AIK_KIND = "rsa"
AIK_HIERARCHY = "endorsement"


@dataclass(frozen=True, slots=True)
class TrustAgentConfig:
    # How tpm2-pytss reaches the TPM: "auto" (the kernel resource manager udev lists, /dev/tpmrmN) or a
    # tpm2-tools TCTI string (device:/dev/tpmrm0, tabrmd, swtpm:host=127.0.0.1,port=2321).
    tcti: str = "auto"
    # Where the HTTPS (mTLS) API listens: host:port, [v6-address]:port.
    listen: str = "0.0.0.0:1443"
    # Keys, certificates and the pinned central CA written by `secl-trustagent setup`.
    state_dir: Path = Path("/var/lib/secl/trustagent")
    # The central's base URL (https://central:8443); `setup --central` overrides it.
    central_url: str = ""
    # This host's name: the CN of its TLS certificate and host_name in host info. Empty: the system's.
    host_name: str = ""
    # Evidence sources.
    event_log_path: Path = Path("/sys/kernel/security/tpm0/binary_bios_measurements")
    ima_log_path: Path = Path("/sys/kernel/security/ima/binary_runtime_measurements")
    dmi_table_path: Path = Path("/sys/firmware/dmi/tables/DMI")
    dmi_dir: Path = Path("/sys/class/dmi/id")
    efi_dir: Path = Path("/sys/firmware/efi")
    efi_vars_dir: Path = Path("/sys/firmware/efi/efivars")
    os_release: Path = Path("/etc/os-release")
    msr_path: Path = Path("/dev/cpu/0/msr")
    # Application measurements (secl-measure): the Measurement XMLs and the PCR 15 event log. /run is a
    # fresh tmpfs every boot, like the PCRs, and the initrd's /run carries over to the booted system.
    measurement_dir: Path = Path("/run/secl/measurements")
    application_event_log: Path = Path("/run/secl/measure-log.json")
    # The SecL Manifest XMLs the initrd measures at every boot (the dracut module reads this directory in
    # the real root): the defaults `setup` installs and those POST /v2/deploy/manifest stores. Empty:
    # <state_dir>/manifests (/var/lib/secl/trustagent/manifests), so a test's state stays in its folder.
    manifest_dir: str = ""
    # The file system POST /v2/host/application-measurement measures in (the host's own root).
    measurement_root: Path = Path("/")
    log_level: str = "INFO"

    @property
    def state(self) -> StateFiles:
        return StateFiles(self.state_dir)

    @property
    def manifest_path(self) -> Path:
        """Where the manifests measured at boot live: ``manifest_dir``, else ``<state_dir>/manifests``."""
        return Path(self.manifest_dir) if self.manifest_dir else self.state_dir / "manifests"

    def listen_address(self) -> tuple[str, int]:
        """``listen`` as (host, port); raise :class:`ConfigError` if it is not host:port."""
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"listen must be host:port, not {self.listen!r}")
        return host.strip("[]") or "0.0.0.0", int(port)

    def to_mapping(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrustAgentConfig:
    """Build the configuration; a missing default file is fine, a missing named file is an error."""
    config = load_settings(
        TrustAgentConfig(), default_path=DEFAULT_CONFIG_PATH, env_prefix=ENV_PREFIX,
        path=path, environ=environ, overrides=overrides,
    )  # fmt: skip
    config.listen_address()
    return config


__all__ = ["ConfigError", "TrustAgentConfig", "load_config"]
