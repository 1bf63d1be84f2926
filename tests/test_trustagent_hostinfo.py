"""Host info against SecL's own samples (corpus intel-secl/pkg/lib/hostinfo/test_data: real SMBIOS tables,
os-release and SecureBoot variables with the platform-info.json SecL produced from them), the edge files
SecL keeps beside them, and a real TPM (swtpm) for version and active banks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from secl.core.hashalg import HashAlg
from secl.host.tpm import TPMAdapter
from secl.trustagent.hostinfo import (
    SECURE_BOOT_VARIABLE,
    HostInfoError,
    HostSources,
    TPMFacts,
    collect,
    os_name,
    parse_os_release,
    parse_smbios,
    secure_boot_enabled,
    tpm_facts,
    txt_enabled,
)
from tests.corpus import corpus_path
from tests.swtpm import RunningSwtpm

SAMPLES = "intel-secl/pkg/lib/hostinfo/test_data"
# SecL's expected output for each sample (the purley file name has SecL's typo).
EXPECTED = {"whitley": "whitley/platform-info.json", "purley": "purley/platforn-info.json"}
SMBIOS_FIELDS = ("bios_name", "bios_version", "hardware_uuid", "processor_info", "process_flags")


def sample(relative: str) -> Path:
    return corpus_path(f"{SAMPLES}/{relative}")


def expected(platform: str) -> dict:
    return json.loads(sample(EXPECTED[platform]).read_text())


def sources_for(platform: str, tmp_path: Path, **overrides: Path | str) -> HostSources:
    efi = tmp_path / "efi"
    efi.mkdir(exist_ok=True)
    values: dict = {
        "os_release": sample(f"{platform}/os-release"),
        "dmi_table": sample(f"{platform}/DMI"),
        "dmi_dir": tmp_path / "no-dmi-dir",
        "efi_dir": efi,
        "efi_vars_dir": sample(platform),  # whitley has the SecureBoot variable, purley none
        "msr": tmp_path / "no-msr",
        "host_name": "localhost.localdomain",
    }
    return HostSources(**(values | overrides))


@pytest.mark.parametrize("platform", ["whitley", "purley"])
def test_smbios_table_gives_what_secl_reported(platform: str) -> None:
    info = parse_smbios(sample(f"{platform}/DMI").read_bytes())
    want = expected(platform)
    got = {
        "bios_name": info.bios_name,
        "bios_version": info.bios_version,
        "hardware_uuid": info.hardware_uuid,
        "processor_info": info.processor_info,
        "process_flags": info.processor_flags,
    }
    assert got == {field: want[field] for field in SMBIOS_FIELDS}
    if "system_sn" in want:
        assert info.system_serial == want["system_sn"]


@pytest.mark.parametrize("platform", ["whitley", "purley"])
def test_host_info_matches_secl_platform_info(platform: str, tmp_path: Path) -> None:
    tpm = TPMFacts("2.0", (HashAlg.SHA1, HashAlg.SHA256))
    info = collect(sources_for(platform, tmp_path), tpm)
    want = expected(platform)
    for field in (*SMBIOS_FIELDS, "os_name", "os_version", "host_name", "tpm_version", "pcr_banks"):
        assert info[field] == want[field], field
    assert info["tpm_enabled"] == "true"
    assert info["hardware_features"]["TPM"] == want["hardware_features"]["TPM"]
    assert info["installed_components"] == ["tagent"]
    if "UEFI" in want["hardware_features"]:
        assert info["hardware_features"]["UEFI"] == want["hardware_features"]["UEFI"]
    # TXT cannot be read from these samples (SecL read it from /dev/cpu/0/msr): reported as not enabled,
    # with the reason, rather than copied.
    assert info["txt_enabled"] == "false" and info["hardware_features"]["TXT"] == {"enabled": "false"}
    assert any("TXT state unknown" in note for note in info["notes"])


def test_host_info_without_a_tpm_says_so(tmp_path: Path) -> None:
    info = collect(sources_for("whitley", tmp_path), None, "tpm-unreachable: no TPM")
    assert info["tpm_enabled"] == "false" and info["pcr_banks"] == [] and info["tpm_version"] == ""
    assert "TPM unavailable: tpm-unreachable: no TPM" in info["notes"]


def test_no_efi_directory_means_legacy_bios(tmp_path: Path) -> None:
    info = collect(sources_for("whitley", tmp_path, efi_dir=tmp_path / "absent"), None)
    assert info["hardware_features"]["UEFI"] == {"enabled": "false", "meta": {"secure_boot_enabled": False}}


def _variable(tmp_path: Path, data: bytes | None) -> Path:
    folder = tmp_path / "efivars"
    folder.mkdir()
    if data is not None:
        (folder / SECURE_BOOT_VARIABLE).write_bytes(data)
    return folder


@pytest.mark.parametrize(
    ("data", "state"),
    [
        (b"\x06\x00\x00\x00\x01", True),
        (b"\x06\x00\x00\x00\x00", False),
        (None, False),  # firmware without Secure Boot has no such variable
        (sample("misc/SecureBootZeroFile").read_bytes(), False),
        (sample("misc/SecureBootShortFile").read_bytes(), None),  # unreadable: unknown, not "off"
    ],
    ids=["enabled", "disabled", "absent", "secl-zero-file", "secl-short-file"],
)
def test_secure_boot_variable(tmp_path: Path, data: bytes | None, state: bool | None) -> None:
    assert secure_boot_enabled(_variable(tmp_path, data)) is state


def test_unknown_secure_boot_state_is_a_note(tmp_path: Path) -> None:
    vars_dir = _variable(tmp_path, sample("misc/SecureBootShortFile").read_bytes())
    info = collect(sources_for("whitley", tmp_path, efi_vars_dir=vars_dir), None)
    assert info["hardware_features"]["UEFI"]["meta"]["secure_boot_enabled"] is False
    assert any("Secure Boot state unknown" in note for note in info["notes"])


@pytest.mark.parametrize(("value", "enabled"), [(0x5, False), (0x3, True), (0xFF07, True), (0x1, False)])
def test_txt_from_ia32_feature_control(tmp_path: Path, value: int, enabled: bool) -> None:
    msr = tmp_path / "msr"  # /dev/cpu/0/msr is read the same way: seek to the MSR number, read 8 bytes
    msr.write_bytes(bytes(0x3A) + value.to_bytes(8, "little"))
    assert txt_enabled(msr) == (enabled, None)


def test_smbios_fallback_to_the_kernels_dmi_files(tmp_path: Path) -> None:
    dmi = tmp_path / "id"
    dmi.mkdir()
    for name, text in {
        "bios_vendor": "EFI Development Kit II / OVMF\n",
        "bios_version": "0.0.0\n",
        "product_uuid": "8032632B-8FA4-E811-906E-00163566263E\n",
    }.items():
        (dmi / name).write_text(text)
    # SecL's misc/smbios2 is not a bare SMBIOS table: it must be refused, not half-read.
    with pytest.raises(HostInfoError):
        parse_smbios(sample("misc/smbios2").read_bytes())
    info = collect(sources_for("whitley", tmp_path, dmi_table=sample("misc/smbios2"), dmi_dir=dmi), None)
    assert info["bios_name"] == "EFI Development Kit II / OVMF" and info["bios_version"] == "0.0.0"
    assert info["hardware_uuid"] == "8032632b-8fa4-e811-906e-00163566263e"
    assert any("SMBIOS table" in note for note in info["notes"])


@pytest.mark.parametrize("cut", [3, 10, 30])
def test_truncated_smbios_table_is_refused(cut: int) -> None:
    table = sample("whitley/DMI").read_bytes()
    with pytest.raises(HostInfoError):
        parse_smbios(table[:cut])


def test_os_release_parsing_and_lsb_names(tmp_path: Path) -> None:
    text = '# comment\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nPRETTY_NAME=\'Debian "bookworm"\'\n\nID=debian\n'
    release = parse_os_release(text)
    assert release == {
        "NAME": "Debian GNU/Linux",
        "VERSION_ID": "12",
        "PRETTY_NAME": 'Debian "bookworm"',
        "ID": "debian",
    }
    assert os_name(release) == "Debian"
    assert os_name({"NAME": "Red Hat Enterprise Linux"}) == "RedHatEnterprise"
    assert os_name({"NAME": "Ubuntu"}) == "Ubuntu"
    missing = collect(sources_for("whitley", tmp_path, os_release=tmp_path / "none"), None)
    assert missing["os_name"] == "" and any("cannot read" in note for note in missing["notes"])


def test_this_machines_own_sources_do_not_fail(tmp_path: Path) -> None:
    # Whatever this machine has (a container may have no SMBIOS or EFI), collecting never raises.
    real = HostSources(
        Path("/etc/os-release"), Path("/sys/firmware/dmi/tables/DMI"), Path("/sys/class/dmi/id"),
        Path("/sys/firmware/efi"), Path("/sys/firmware/efi/efivars"), Path("/dev/cpu/0/msr"),
    )  # fmt: skip
    info = collect(real, None)
    assert info["os_name"] and info["host_name"]


@pytest.mark.swtpm
def test_tpm_version_and_active_banks_come_from_the_tpm(swtpm: RunningSwtpm) -> None:
    # The swtpm fixture allocates the sha1 and sha256 banks (swtpm_setup active_pcr_banks).
    with TPMAdapter(swtpm.tcti) as tpm:
        assert tpm_facts(tpm) == TPMFacts("2.0", (HashAlg.SHA1, HashAlg.SHA256))


def test_efi_vars_copied_sample_is_read_like_the_original(tmp_path: Path) -> None:
    # The variable file name is what locates it: a copy of SecL's sample under the real name is read.
    vars_dir = tmp_path / "vars"
    vars_dir.mkdir()
    shutil.copy(sample(f"whitley/{SECURE_BOOT_VARIABLE}"), vars_dir / SECURE_BOOT_VARIABLE)
    assert secure_boot_enabled(vars_dir) is False
