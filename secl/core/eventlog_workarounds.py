"""Known firmware defects that make an honest event log fail to replay, kept as named data.

A workaround is tried only when the PCR it affects fails to replay, and only on a copy of the replayed
values; a verification that needed one reports it by name, so an operator sees the defect rather than a
silently "fixed" log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from secl.core.hashalg import HashAlg


@dataclass(frozen=True, slots=True)
class Workaround:
    name: str
    affected_pcr: int
    description: str
    apply: Callable[[HashAlg, bytes], bytes]  # replayed value -> value the firmware actually produced


def _extend_missing_exit_boot_services(bank: HashAlg, value: bytes) -> bytes:
    # Some firmware extends the two ExitBootServices EV_EFI_ACTION events into PCR 5 without logging them.
    for action in (b"Exit Boot Services Invocation", b"Exit Boot Services Returned with Success"):
        value = bank.hash(value + bank.hash(action))
    return value


WORKAROUNDS: tuple[Workaround, ...] = (
    Workaround(
        name="ebs-events-not-logged",
        affected_pcr=5,
        description="the firmware extended the ExitBootServices events into PCR 5 but did not log them",
        apply=_extend_missing_exit_boot_services,
    ),
)
