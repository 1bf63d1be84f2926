"""A host's description of itself (the trust agent's ``GET /v2/host``), and how far it is believed.

The agent's answer is SecL's platform-info document: hardware UUID, BIOS, OS, TPM, active PCR banks. None of
it is in the TPM quote, so it starts as :class:`ClaimedHostInfo`, the host's word: fit for choosing what to
ask for (which PCR banks to quote) and for refusing early (a tag certificate for another machine), never for
recording or judging. It becomes :class:`VerifiedHost` only as part of evidence whose quote verified with
the key of the AIK the same agent sent (:func:`secl.central.evidence.verify.verify_evidence`): the host's
hardware UUID is recorded on its row, and the document goes into the host manifest the rules judge, only
from a :class:`VerifiedHost`. Whether that AIK was certified by this central's Privacy CA is for the
AikCertificateTrusted rule to say in the report.

Both keep the document exactly as the agent sent it (SecL's JSON shape, stored in the host manifest and
hashed into a report's basis); neither copies it, and nothing may change it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

#: Banks the verifier asks for, in this order, when the host has them active.
BANKS = ("SHA1", "SHA256", "SHA384")


@dataclass(frozen=True, slots=True)
class ClaimedHostInfo:
    """The agent's ``GET /v2/host`` document: unverified claims."""

    document: dict[str, Any]

    def quote_banks(self) -> list[str]:
        """The PCR banks to ask the quote over: those of :data:`BANKS` the host says are active (SHA1 and
        SHA256 when it names none). A false claim only gets the host a quote it cannot match."""
        active = self.document.get("pcr_banks")
        if isinstance(active, list):
            wanted = [bank for bank in BANKS if bank in {str(b).upper() for b in active}]
            if wanted:
                return wanted
        return ["SHA1", "SHA256"]

    def unverified_hardware_uuid(self) -> str | None:
        """The hardware UUID the host claims, in canonical form; None when it claims none or no UUID."""
        try:
            return str(uuid.UUID(str(self.document.get("hardware_uuid"))))
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class VerifiedHost:
    """The host info of evidence whose quote verified (see the module docstring for what that vouches for)."""

    document: dict[str, Any]

    @property
    def raw_hardware_uuid(self) -> Any:
        """The ``hardware_uuid`` member as sent, for error messages."""
        return self.document.get("hardware_uuid")

    def hardware_uuid(self) -> str:
        """The host's hardware UUID in canonical form; ValueError when the member is not a UUID."""
        return str(uuid.UUID(str(self.document.get("hardware_uuid"))))
