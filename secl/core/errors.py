"""The one exception family of the evidence core.

Each error carries a stable ``code`` (a short kebab-case name that reports, logs and the API can key on)
and a human message that says what was wrong. Callers catch :class:`EvidenceError`; nothing else escapes
the core's parsers and verifiers for bad input.
"""

from __future__ import annotations

from collections.abc import Mapping


class EvidenceError(Exception):
    """Evidence (a log, a quote, a certificate) is malformed or does not verify."""

    code: str = "evidence-error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class EventLogError(EvidenceError):
    """A TCG event log could not be parsed."""

    code = "eventlog-malformed"


class ReplayError(EvidenceError):
    """A replayed event log does not reach the PCR values it was checked against.

    ``mismatches`` maps ``(bank, pcr)`` to ``(expected, replayed)`` digests, so a report can say which
    registers differ and by how much, not only that something did.
    """

    code = "eventlog-replay-mismatch"

    def __init__(self, message: str, mismatches: Mapping[tuple[str, int], tuple[bytes, bytes]]) -> None:
        super().__init__(message)
        self.mismatches = dict(mismatches)


class IMALogError(EvidenceError):
    """An IMA runtime measurement log could not be parsed."""

    code = "ima-log-malformed"


class TPMStructureError(EvidenceError):
    """A TPM 2.0 structure (TPMS_ATTEST, TPMT_SIGNATURE, TPM2B_PUBLIC, ...) could not be unmarshalled."""

    code = "tpm-structure-malformed"


class QuoteError(EvidenceError):
    """A TPM2_Quote does not verify: bad signature, wrong nonce, PCR digest mismatch, ..."""

    code = "quote-invalid"


class CertifyError(EvidenceError):
    """A TPM2_Certify (or creation) attestation does not verify."""

    code = "certify-invalid"


class EKCertificateError(EvidenceError):
    """An EK certificate (or a vendor CA certificate) cannot be loaded or does not chain to a trusted CA."""

    code = "ekcert-invalid"
