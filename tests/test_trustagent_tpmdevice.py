"""Finding the TPM resource manager with udev (tcti = "auto").

These machines have no TPM device node (DESIGN §6: a hardware TPM's node cannot exist here), so the
selection rule is exercised with a named fake device list, and the real udev path is exercised for what it
sees on this machine: no tpmrm device, and a clear error.
"""

from __future__ import annotations

import pytest

from secl.core.hashalg import HashAlg
from secl.host.tpm import TPMAdapter, TPMError
from secl.host.tpmdevice import find_resource_manager, resolve_tcti, udev_resource_managers
from secl.trustagent.config import TrustAgentConfig
from tests.swtpm import RunningSwtpm


def fake_udev(*nodes: str):  # the fake: stands for a host's /sys/class/tpmrm
    return lambda: list(nodes)


def test_auto_picks_the_lowest_numbered_resource_manager() -> None:
    assert (
        resolve_tcti("auto", fake_udev("/dev/tpmrm10", "/dev/tpmrm2", "/dev/tpmrm1")) == "device:/dev/tpmrm1"
    )
    assert resolve_tcti(" AUTO ", fake_udev("/dev/tpmrm0")) == "device:/dev/tpmrm0"
    assert resolve_tcti("device:auto", fake_udev("/dev/tpmrm3")) == "device:/dev/tpmrm3"


def test_an_explicit_tcti_is_used_as_given_and_udev_is_not_asked() -> None:
    def must_not_be_called() -> list[str]:
        raise AssertionError("udev asked for an explicit TCTI")

    for tcti in ("device:/dev/tpmrm1", "tabrmd", "swtpm:host=127.0.0.1,port=2321"):
        assert resolve_tcti(tcti, must_not_be_called) == tcti


def test_no_resource_manager_is_a_named_error_that_says_what_to_do() -> None:
    with pytest.raises(TPMError) as err:
        find_resource_manager(fake_udev())
    assert err.value.code == "tpm-not-found"
    assert "tcti" in str(err.value) and "/etc/secl/trustagent.toml" in str(err.value)


def test_real_udev_on_this_machine() -> None:
    nodes = udev_resource_managers()  # pyudev over the real /sys
    assert all(node.startswith("/dev/tpmrm") for node in nodes)
    if nodes:  # a machine with a TPM: auto resolves to one of its nodes
        assert resolve_tcti("auto") in {f"device:{n}" for n in nodes}
    else:  # these machines: the adapter refuses with the named error before tpm2-tss is tried
        with pytest.raises(TPMError) as err:
            TPMAdapter("auto")
        assert err.value.code == "tpm-not-found"


def test_auto_is_the_default_and_an_explicit_tcti_still_reaches_the_swtpm(swtpm: RunningSwtpm) -> None:
    assert TrustAgentConfig().tcti == "auto"
    with TPMAdapter(swtpm.tcti) as tpm:
        assert tpm.read_pcrs({HashAlg.SHA256: [0]})[HashAlg.SHA256][0] == bytes(32)  # a fresh TPM
