"""A swtpm that booted a real firmware: the corpus OVMF log's digests extended into its PCRs.

The log was captured on OVMF under QEMU with a swtpm vTPM (corpus ovmf/); ``HOSTINFO`` is the trust agent's
host-info test data (SMBIOS, EFI variables, os-release) of the same kind of machine.
"""

from __future__ import annotations

from secl.core.eventlog import parse_event_log
from secl.host.tpm import TPMAdapter

OVMF_LOG = "ovmf/ovmf-q35-swtpm-binary_bios_measurements.bin"
HOSTINFO = "intel-secl/pkg/lib/hostinfo/test_data/whitley"


def boot(tcti: str, log: bytes) -> None:
    """Extend every measured event of ``log`` into the TPM, as the firmware did during its boot."""
    with TPMAdapter(tcti) as tpm:
        for event in parse_event_log(log).iter_extended():
            tpm.extend_pcr(event.pcr, dict(event.digests))
