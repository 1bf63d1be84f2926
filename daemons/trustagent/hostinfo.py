"""Host info, in the shape of SecL's platform-info (``GET /v2/host``): OS, BIOS, hardware UUID, TPM, UEFI.

Every source is a file whose path comes from the configuration, read the way SecL's ``pkg/lib/hostinfo``
reads it: os-release for the OS, the raw SMBIOS table (types 0, 1 and 4) for BIOS, hardware UUID and
processor, the ``SecureBoot`` EFI variable for Secure Boot, IA32_FEATURE_CONTROL for TXT. The TPM's
version and active PCR banks come from the TPM itself. What cannot be determined is reported as not
enabled, with the reason in ``notes``, never guessed.
"""

from __future__ import annotations

import re
import socket
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secl.core.hashalg import HashAlg
from secl.host.tpm import TPMAdapter, TPMError
from secl.trustagent.config import TrustAgentConfig

SECURE_BOOT_VARIABLE = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
_MSR_FEATURE_CONTROL = 0x3A
_TXT_ENABLED_BITS = 0x3  # lock + VMX inside SMX, as SecL's msr_parser checks
_SMBIOS_END = 127
# CPUID.1:EDX feature flags as dmidecode names them (type 4 "Processor ID"); blanks are reserved bits.
_CPU_FLAGS = (
    "FPU", "VME", "DE", "PSE", "TSC", "MSR", "PAE", "MCE", "CX8", "APIC", "-", "SEP", "MTRR", "PGE", "MCA", "CMOV", "PAT", "PSE-36", "PSN", "CLFSH", "-", "DS", "ACPI", "MMX", "FXSR", "SSE", "SSE2", "SS", "HTT", "TM", "-", "PBE",
)  # fmt: skip


class HostInfoError(Exception):
    """A host-info source exists but cannot be parsed."""


@dataclass(frozen=True)
class HostSources:
    """Where host info comes from; :meth:`from_config` takes the configured paths."""

    os_release: Path
    dmi_table: Path
    dmi_dir: Path
    efi_dir: Path
    efi_vars_dir: Path
    msr: Path
    host_name: str = ""

    @classmethod
    def from_config(cls, config: TrustAgentConfig) -> HostSources:
        return cls(
            config.os_release, config.dmi_table_path, config.dmi_dir, config.efi_dir,
            config.efi_vars_dir, config.msr_path, config.host_name,
        )  # fmt: skip


@dataclass(frozen=True)
class TPMFacts:
    version: str
    banks: tuple[HashAlg, ...]


@dataclass(frozen=True)
class SMBIOSInfo:
    bios_name: str = ""
    bios_version: str = ""
    hardware_uuid: str | None = None
    system_serial: str = ""
    processor_info: str = ""
    processor_flags: str = ""


def tpm_facts(tpm: TPMAdapter) -> TPMFacts:
    """The TPM's version and active PCR banks: a bank is active if the TPM returns its PCR 0."""
    banks = []
    for bank in HashAlg:
        try:
            tpm.read_pcrs({bank: [0]})
        except TPMError as exc:
            if exc.code not in ("tpm-pcr-unavailable", "tpm-command-failed"):
                raise
            continue
        banks.append(bank)
    # tpm2-pytss speaks TPM 2.0 only: an adapter exists only if the TPM answered TPM 2.0 commands.
    return TPMFacts("2.0", tuple(banks))


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines of os-release(5); values may be quoted, comments and blank lines are skipped."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        values[key.strip()] = value
    return values


def os_name(release: dict[str, str]) -> str:
    """The distributor id lsb_release prints, which SecL reports: "Red Hat Enterprise Linux" ->
    "RedHatEnterprise", "Debian GNU/Linux" -> "Debian", "Ubuntu" -> "Ubuntu"."""
    name = release.get("NAME", "")
    name = re.sub(r"\b(GNU/)?Linux\b", "", name)
    return re.sub(r"\s+", "", name)


def parse_smbios(table: bytes) -> SMBIOSInfo:
    """Read BIOS (type 0), system (type 1) and processor (type 4) structures of a raw SMBIOS table."""
    found: dict[str, Any] = {}
    offset = 0
    while offset + 4 <= len(table):
        kind, length = table[offset], table[offset + 1]
        if length < 4 or offset + length > len(table):
            raise HostInfoError(f"SMBIOS structure at 0x{offset:x} has a bad length {length}")
        end = table.find(b"\x00\x00", offset + length)
        if end < 0:
            raise HostInfoError(f"SMBIOS structure at 0x{offset:x} has unterminated strings")
        data = table[offset : offset + length]
        strings = [s.decode("utf-8", "replace").strip() for s in table[offset + length : end].split(b"\x00")]
        _read_structure(kind, data, strings if end > offset + length else [], found)
        offset = end + 2
        if kind == _SMBIOS_END:
            break
    else:
        if offset != len(table) or not table:
            raise HostInfoError(f"SMBIOS table truncated at 0x{offset:x}")
    return SMBIOSInfo(**found)


def _string(data: bytes, at: int, strings: list[str]) -> str:
    index = data[at] if at < len(data) else 0
    return strings[index - 1] if 0 < index <= len(strings) else ""


def _read_structure(kind: int, data: bytes, strings: list[str], found: dict[str, Any]) -> None:
    if kind == 0:
        found["bios_name"] = _string(data, 4, strings)
        found["bios_version"] = _string(data, 5, strings)
    elif kind == 1 and len(data) >= 24:
        raw = data[8:24]
        # SMBIOS 2.6+ stores the first three UUID fields little-endian; all 00 or all FF means "not set".
        found["hardware_uuid"] = None if raw in (bytes(16), b"\xff" * 16) else str(uuid.UUID(bytes_le=raw))
        found["system_serial"] = _string(data, 7, strings)
    elif kind == 4 and len(data) >= 16 and data[6] and "processor_info" not in found:
        found["processor_info"] = " ".join(f"{b:02X}" for b in data[8:16])
        (edx,) = struct.unpack_from("<I", data, 12)
        found["processor_flags"] = " ".join(f for i, f in enumerate(_CPU_FLAGS) if f != "-" and edx >> i & 1)


def _dmi_file(directory: Path, name: str) -> str:
    try:
        return (directory / name).read_text(errors="replace").strip()
    except OSError:
        return ""


def read_smbios(sources: HostSources, notes: list[str]) -> SMBIOSInfo:
    """The SMBIOS table; if it cannot be read, the kernel's decoded DMI files (no processor id)."""
    try:
        return parse_smbios(sources.dmi_table.read_bytes())
    except (OSError, HostInfoError) as exc:
        notes.append(f"SMBIOS table {sources.dmi_table} unusable ({exc}); used {sources.dmi_dir}")
    product_uuid = _dmi_file(sources.dmi_dir, "product_uuid").lower()
    return SMBIOSInfo(
        bios_name=_dmi_file(sources.dmi_dir, "bios_vendor"),
        bios_version=_dmi_file(sources.dmi_dir, "bios_version"),
        hardware_uuid=product_uuid or None,
        system_serial=_dmi_file(sources.dmi_dir, "product_serial"),
    )


def secure_boot_enabled(efi_vars_dir: Path) -> bool | None:
    """The SecureBoot variable (4 bytes of attributes, then 1 = enabled); None if it cannot be read."""
    try:
        data = (efi_vars_dir / SECURE_BOOT_VARIABLE).read_bytes()
    except FileNotFoundError:
        return False  # firmware without Secure Boot support has no such variable
    except OSError:
        return None
    if len(data) != 5:
        return None
    return data[4] == 1


def txt_enabled(msr: Path) -> tuple[bool, str | None]:
    """TXT per IA32_FEATURE_CONTROL (as SecL reads it); (False, reason) when the MSR cannot be read."""
    try:
        with msr.open("rb") as f:
            f.seek(_MSR_FEATURE_CONTROL)
            data = f.read(8)
    except OSError as exc:
        return False, f"TXT state unknown: cannot read {msr}: {exc.strerror or exc}"
    if len(data) != 8:
        return False, f"TXT state unknown: short read from {msr}"
    return (int.from_bytes(data, "little") & _TXT_ENABLED_BITS) == _TXT_ENABLED_BITS, None


def _flag(value: bool) -> str:
    return "true" if value else "false"


def collect(sources: HostSources, tpm: TPMFacts | None, tpm_problem: str | None = None) -> dict[str, Any]:
    """Host info as SecL's platform-info JSON (string booleans where SecL uses them)."""
    notes: list[str] = []
    try:
        release = parse_os_release(sources.os_release.read_text(errors="replace"))
    except OSError as exc:
        release = {}
        notes.append(f"cannot read {sources.os_release}: {exc.strerror or exc}")
    smbios = read_smbios(sources, notes)
    uefi = sources.efi_dir.is_dir()
    secure_boot = secure_boot_enabled(sources.efi_vars_dir) if uefi else False
    if secure_boot is None:
        notes.append(
            f"Secure Boot state unknown: {SECURE_BOOT_VARIABLE} in {sources.efi_vars_dir} unreadable"
        )
    txt, txt_problem = txt_enabled(sources.msr)
    notes += [txt_problem] if txt_problem else []
    notes += [f"TPM unavailable: {tpm_problem}"] if tpm_problem else []
    banks = [bank.name for bank in tpm.banks] if tpm else []
    info: dict[str, Any] = {
        "os_name": os_name(release),
        "os_version": release.get("VERSION_ID", ""),
        "os_type": "linux",
        "bios_name": smbios.bios_name,
        "bios_version": smbios.bios_version,
        "hardware_uuid": smbios.hardware_uuid,
        "processor_info": smbios.processor_info,
        "process_flags": smbios.processor_flags,
        "host_name": sources.host_name or socket.gethostname(),
        "tpm_version": tpm.version if tpm else "",
        "pcr_banks": banks,
        "tpm_enabled": _flag(tpm is not None),
        "txt_enabled": _flag(txt),
        "hardware_features": {
            "TXT": {"enabled": _flag(txt)},
            "TPM": {
                "enabled": _flag(tpm is not None),
                "meta": {"tpm_version": tpm.version if tpm else "", "pcr_banks": "_".join(banks)},
            },
            "UEFI": {"enabled": _flag(uefi), "meta": {"secure_boot_enabled": bool(secure_boot)}},
        },
        "installed_components": ["tagent"],
    }
    if smbios.system_serial:
        info["system_sn"] = smbios.system_serial
    if notes:
        info["notes"] = notes
    return info
