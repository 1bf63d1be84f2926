"""Access to the shared, read-only evidence corpus (../shared/corpus, see its INDEX.md).

A test that needs the corpus fails loudly when it is missing: a silent skip would hide exactly the
regressions the corpus exists to catch.
"""

from __future__ import annotations

import base64
import json
import os
from functools import cache
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


@cache
def corpus_root() -> Path:
    """Return the corpus folder: $SECL_CORPUS, else ../shared/corpus beside the repository."""
    candidates = []
    if os.environ.get("SECL_CORPUS"):
        candidates.append(Path(os.environ["SECL_CORPUS"]))
    candidates += [_REPO.parent / "shared" / "corpus", Path("/work/shared/corpus")]
    for candidate in candidates:
        if (candidate / "INDEX.md").is_file():
            return candidate
    raise FileNotFoundError(
        "evidence corpus not found (looked in: "
        + ", ".join(str(c) for c in candidates)
        + "); set SECL_CORPUS to the folder holding corpus/INDEX.md"
    )


def corpus_path(relative: str) -> Path:
    """Return the path of a corpus file, failing loudly if it is not there."""
    path = corpus_root() / relative
    if not path.exists():
        raise FileNotFoundError(f"corpus file missing: {path}")
    return path


def corpus_bytes(relative: str) -> bytes:
    """Return a corpus file's bytes, decoding ``.b64`` files (tpm2-tss ships its logs base64-encoded)."""
    data = corpus_path(relative).read_bytes()
    if relative.endswith(".b64"):
        return base64.b64decode(b"".join(data.split()))
    return data


def expected(name: str) -> dict:
    """Return one of the corpus's ``_expected/*.json`` files."""
    return json.loads(corpus_path(f"_expected/{name}").read_text())


# Every binary firmware log in the corpus (base64 ones are decoded to a temporary file first).
CORPUS_LOGS = [
    "go-tpm-tools/eventlogs/arch-linux-workstation.bin",
    "go-tpm-tools/eventlogs/cos-85-amd-sev.bin",
    "go-tpm-tools/eventlogs/cos-93-amd-sev.bin",
    "go-tpm-tools/eventlogs/glinux-alex.bin",
    "go-tpm-tools/eventlogs/ubuntu-1804-amd-sev.bin",
    "go-tpm-tools/eventlogs/ubuntu-2104-no-dbx.bin",
    "go-tpm-tools/eventlogs/ubuntu-2104-no-secure-boot.bin",
    "go-attestation/attest/testdata/sb_cert_eventlog",
    "go-attestation/attest/testdata/option_rom_eventlog",
    "go-attestation/attest/testdata/ebs_event_missing_eventlog",
    "go-attestation/attest/testdata/crypto_agile_eventlog",
    "go-attestation/attest/testdata/coreos_36_shielded_vm_no_secure_boot_eventlog",
    "go-attestation/attest/testdata/short_no_action_eventlog",
    "tpm2-tools/test/integration/fixtures/event-arch-linux.bin",
    "tpm2-tools/test/integration/fixtures/event-bootorder.bin",
    "tpm2-tools/test/integration/fixtures/event-gce-ubuntu-2104-log.bin",
    "tpm2-tools/test/integration/fixtures/event-moklisttrusted.bin",
    "tpm2-tools/test/integration/fixtures/event-postcode.bin",
    "tpm2-tools/test/integration/fixtures/event-sd-boot-fedora37.bin",
    "tpm2-tools/test/integration/fixtures/event-uefi-sha1-log.bin",
    "tpm2-tools/test/integration/fixtures/event-uefiaction.bin",
    "tpm2-tools/test/integration/fixtures/event-uefiservices.bin",
    "tpm2-tools/test/integration/fixtures/event-uefivar.bin",
    "tpm2-tools/test/integration/fixtures/event.bin",
    "tpm2-tss/test/data/fapi/eventlog/binary_measurements_hcrtm.b64",
    "tpm2-tss/test/data/fapi/eventlog/binary_measurements_nuc.b64",
    "tpm2-tss/test/data/fapi/eventlog/binary_measurements_pc_client.b64",
    "tpm2-tss/test/data/fapi/eventlog/specid-vendordata.b64",
    "fwupd/plugins/tpm-eventlog/tests/binary_bios_measurements-v1",
    "fwupd/plugins/tpm-eventlog/tests/binary_bios_measurements-v2",
    "ima-evm-utils/tests/sample-binary_bios_measurements-pcrs-8-9",
    "ima-evm-utils/tests/test_binary_bios_measurements",
    "intel-secl/pkg/tagent/test/eventlog/uefi_event_log.bin",
    "intel-secl/pkg/tagent/test/eventlog/txt-logs.bin",
    "keylime/test/data/mb_log.b64",
    "keylime/test/data/create-mb-policy/binary_bios_measurements",
    "keylime/test/data/create-mb-policy/binary_bios_measurements-secureboot",
    "rust-keylime/keylime/test-data/uefi_log.bin",
    "tcglog-parser/testdata/binary_bios_measurements",
    "ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin",
]
