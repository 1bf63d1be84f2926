"""What a central process remembers between requests and reports, so unchanged inputs are not worked again.

Every memo is keyed on the exact inputs of a pure computation (see :mod:`secl.core.verifymemo`): a host
that sends the same AIK certificate, PCR values and event log again gets its manifest from the memo, an
unchanged flavor row its verified flavor, a certificate chain checked before its result. Changed inputs
are new keys and are worked afresh. One :class:`Memos` belongs to one service context (one application);
nothing here is module state, so two centrals in one process (the tests) share nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from secl.central.flavorgroups.schemas import FlavorMatchPolicy
from secl.core.ekcert import LoadedCertificate
from secl.core.flavor import SignedFlavor
from secl.core.manifestbuild import ManifestMemo
from secl.core.quote import PCRValues
from secl.core.tpm import AKPublic
from secl.core.verifymemo import ResultMemo, VerificationMemo

#: Host manifests the central knows to be stored, and verified flavors kept.
STORED_MANIFESTS = 4096
VERIFIED_FLAVORS = 4096


@dataclass(frozen=True)
class EvidenceMemos:
    """What the verifier remembers of the hosts' evidence, keyed on exact inputs: host manifests (one per
    host boot, roughly), and per AIK certificate its parsed key and decoded PCR values."""

    manifests: ManifestMemo = field(default_factory=lambda: ManifestMemo(size=4096))
    ak_keys: ResultMemo[str, AKPublic] = field(default_factory=lambda: ResultMemo(size=4096))
    # Per AIK (one per host): the PCR values as the agent sent them (JSON) and as decoded.
    pcr_values: ResultMemo[str, tuple[dict[str, Any], PCRValues]] = field(
        default_factory=lambda: ResultMemo(size=4096)
    )

    @classmethod
    def for_hosts(cls, hosts: int) -> EvidenceMemos:
        """Memos for ``hosts`` hosts (a remembered manifest is ~260 KiB; 0 keeps none)."""
        hosts = max(0, hosts)
        return cls(ManifestMemo(size=hosts), ResultMemo(size=max(hosts, 1)), ResultMemo(size=max(hosts, 1)))


class Memos:
    """The memos of one central: those a report reads (:meth:`forget` empties them), and the small ones of
    the database's own state (group ids, parsed match policies and endorsement CAs), which it keeps."""

    def __init__(self, verifier_memo_hosts: int) -> None:
        self.verifier_memo_hosts = verifier_memo_hosts
        # Stored match policies (their JSON text) parsed and validated, per distinct text.
        self.match_policies: ResultMemo[str, tuple[FlavorMatchPolicy, ...]] = ResultMemo(size=1024)
        # Ids of the default flavor groups, by name (they cannot be deleted, so an id once read holds).
        self.group_ids: ResultMemo[str, str] = ResultMemo(size=16)
        # Endorsement CAs from the database, parsed, by their PEM.
        self.endorsement_cas: dict[str, LoadedCertificate] = {}
        # The bundle keys/endorsement-cas.pem, parsed, keyed on its (mtime, size, inode): one entry.
        self.endorsement_bundle: ResultMemo[tuple[int, int, int], tuple[LoadedCertificate, ...]] = ResultMemo(
            size=1
        )
        self.forget()

    def forget(self) -> None:
        """Empty the memos a report reads: the next report of every host parses and replays its event log
        and parses and verifies its flavors, as after a restart."""
        self.evidence = EvidenceMemos.for_hosts(self.verifier_memo_hosts)
        self.forget_stored_manifests()
        # Stored flavors whose signature verified: per (id, scheme, signature, signer) the text and result.
        self.verified_flavors: ResultMemo[bytes, tuple[str, SignedFlavor]] = ResultMemo(size=VERIFIED_FLAVORS)
        # Signature checks that passed (flavors, certificate chains), keyed on the exact bytes checked.
        self.signatures = VerificationMemo()

    def forget_stored_manifests(self) -> None:
        """Forget which host manifests are stored (the database lost one this process had stored)."""
        # The digests of host manifests this process knows to be committed.
        self.stored_manifests: ResultMemo[str, bool] = ResultMemo(size=STORED_MANIFESTS)
