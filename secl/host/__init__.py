"""What every compute-host part shares: the TPM, the host's measurements, and enrollment with the central.

``tpm`` (the one tpm2-pytss adapter) and ``tpmdevice`` (finding the resource manager through udev);
``measure`` (the measuring engine) and ``measurelog`` (measurement files, PCR 15 extend + event);
``statefiles``, ``enrollment`` (CA pinning, the central's pinned TLS key, the TLS certificate) and
``provisioning`` (AIK enrollment with the Privacy CA, host registration). The trust agent uses it now, the
workload agent next; the admin CLI uses the measuring engine. No web framework and no database here, and
nothing from a daemon: ``tests/test_layering.py`` checks that.
"""
