"""What a host is judged against: its flavor groups with their match policies and their flavors (with the
host's own HOST_UNIQUE/ASSET_TAG flavors where a group asks for them), read in one statement for one host
or for a worker's whole batch of hosts, and the host's revoked tag certificates (when an ASSET_TAG flavor
needs them).

The verifier reads this for every report, and the report queue's worker hashes the same inputs to decide
whether a report can be re-used, so it is read once into a frozen :class:`HostPolicy` that both share. The
statements are Core selects of the columns the verifier uses rather than ORM entities: at hundreds of reports
per second the ORM's row objects and identity map cost more than the queries. A flavor's document is
read as the text it was stored as, unverified; :func:`secl.central.flavors.store.verified` parses and
verifies it (or takes it from its memo when that exact text and signature already verified).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, bindparam, cast, literal, null, select, union_all
from sqlalchemy.orm import Session

from secl.central.context import CentralServices
from secl.central.flavorgroups.schemas import FlavorMatchPolicy
from secl.central.flavorgroups.service import HOST_UNIQUE
from secl.central.memos import Memos
from secl.central.store.hvs_flavor_models import (
    FlavorGroup,
    Host,
    StoredFlavor,
    flavorgroup_flavors,
    host_flavorgroups,
)
from secl.central.store.hvs_tag_models import TagCertificateRecord
from secl.central.store.kbs_models import HostKeyCertificate

__all__ = [
    "FlavorRecord",
    "GroupPolicy",
    "HostPolicy",
    "host_unique_group_id",
    "load_host_policies",
    "load_host_policy",
]

#: Parts whose flavors belong to one host: a group with a policy for them also gets that host's own.
HOST_OWN_PARTS = ("HOST_UNIQUE", "ASSET_TAG")

_link = flavorgroup_flavors.c

# The statements are built once: an SQL expression is an immutable value, and SQLAlchemy keys its
# compiled-statement cache on it. One statement reads the host's groups with their flavors (a group without
# flavors still gives one row, its flavor columns null) and, second, the host's own flavors in the
# host_unique group; oldest first. The match policies come as their stored JSON text (parsed and validated
# once per distinct text, see _match_policies) and the creation time only orders the rows.
_FLAVOR_COLUMNS = (
    StoredFlavor.id,
    StoredFlavor.flavor_part,
    StoredFlavor.label,
    StoredFlavor.document,
    StoredFlavor.signature,
    StoredFlavor.signature_scheme,
    StoredFlavor.created_at,
)
_GROUPS_AND_OWN = union_all(
    select(
        host_flavorgroups.c.host_id.label("host_key"),
        FlavorGroup.id.label("group_id"),
        FlavorGroup.name.label("group_name"),
        cast(FlavorGroup.match_policies, Text).label("match_policies"),
        literal(False).label("own"),
        *_FLAVOR_COLUMNS,
    )
    .select_from(host_flavorgroups)
    .join(FlavorGroup, FlavorGroup.id == host_flavorgroups.c.flavorgroup_id)
    .outerjoin(flavorgroup_flavors, _link.flavorgroup_id == FlavorGroup.id)
    .outerjoin(StoredFlavor, StoredFlavor.id == _link.flavor_id)
    .where(host_flavorgroups.c.host_id.in_(bindparam("host_ids", expanding=True))),
    select(
        StoredFlavor.hardware_uuid,
        _link.flavorgroup_id,
        literal(""),
        cast(null(), Text),
        literal(True),
        *_FLAVOR_COLUMNS,
    )
    .join(flavorgroup_flavors, _link.flavor_id == StoredFlavor.id)
    .where(
        _link.flavorgroup_id == bindparam("unique_id"),
        StoredFlavor.hardware_uuid.in_(bindparam("hardware_uuids", expanding=True)),
    ),
).subquery()
_POLICY = select(*(c for c in _GROUPS_AND_OWN.c if c.name != "created_at")).order_by(
    _GROUPS_AND_OWN.c.created_at, _GROUPS_AND_OWN.c.id
)
_REVOKED_TAGS = select(TagCertificateRecord.sha384).where(
    TagCertificateRecord.hardware_uuid == bindparam("hardware_uuid"), TagCertificateRecord.revoked.is_(True)
)


@dataclass(frozen=True)
class FlavorRecord:
    """A stored flavor as the verifier reads it: its text and signature, not yet verified."""

    id: str
    flavor_part: str
    label: str
    document: str
    signature: str
    signature_scheme: str


@dataclass(frozen=True)
class GroupPolicy:
    """One flavor group of the host: its match policies, and its flavors oldest first, then the host's own
    (SecL's rule: the flavors of the host_unique group that carry the host's hardware UUID)."""

    id: str
    name: str
    match_policies: tuple[FlavorMatchPolicy, ...]
    flavors: tuple[FlavorRecord, ...]

    def match_types(self) -> dict[str, str]:
        return {p.flavor_part: p.match_policy.match_type for p in self.match_policies}

    def required_parts(self) -> list[str]:
        return [p.flavor_part for p in self.match_policies if p.match_policy.required == "REQUIRED"]


@dataclass(frozen=True)
class HostPolicy:
    groups: tuple[GroupPolicy, ...]
    # SHA-384 digests of the host's tag certificates that were revoked (TagCertificateTrusted refuses them).
    revoked_tag_certificates: frozenset[bytes]
    # Hex SHA-384 of the host's certified binding key (the Privacy CA's certificate), if it has one: the
    # report's attestation result names it, so a key broker wraps keys only to that key.
    binding_key_certificate_sha384: str | None = None


_BINDING_KEYS = select(HostKeyCertificate.host_id, HostKeyCertificate.sha384).where(
    HostKeyCertificate.host_id.in_(bindparam("host_ids", expanding=True)),
    HostKeyCertificate.usage == "binding",
)


def host_unique_group_id(session: Session, memos: Memos) -> str | None:
    """The id of SecL's host_unique group (a default group: it cannot be deleted, so its id is kept)."""
    found = memos.group_ids.get(HOST_UNIQUE)
    if found is None:
        found = session.scalar(select(FlavorGroup.id).where(FlavorGroup.name == HOST_UNIQUE))
        if found is not None:
            memos.group_ids.put(HOST_UNIQUE, found)
    return found


def load_host_policy(session: Session, services: CentralServices, host: Host) -> HostPolicy:
    """The host's flavor groups (by name) with their flavors, and its revoked tag certificates."""
    return load_host_policies(session, services, [host])[host.id]


def load_host_policies(
    session: Session, services: CentralServices, hosts: Sequence[Host]
) -> dict[str, HostPolicy]:
    """:func:`load_host_policy` of each host, by host id, in one statement for all (a worker's batch)."""
    session.flush()  # the statements below go to the connection, past the session's pending changes
    uuids = {h.id: h.hardware_uuid.lower() for h in hosts if h.hardware_uuid}
    memos = services.memos
    unique_id = host_unique_group_id(session, memos) if uuids else None
    # An empty list binds no row; a missing host_unique group binds "", which no group id is.
    rows = (
        session.connection()
        .execute(
            _POLICY,
            {
                "host_ids": sorted({h.id for h in hosts}),
                "unique_id": unique_id or "",
                "hardware_uuids": sorted(set(uuids.values())) if unique_id else [],
            },
        )
        .all()
    )
    own: dict[str, list[FlavorRecord]] = {}
    groups: dict[str, dict[str, tuple[str, tuple[FlavorMatchPolicy, ...]]]] = {}
    flavors: dict[tuple[str, str], list[FlavorRecord]] = {}
    for row in rows:  # oldest first
        if row.own:
            own.setdefault(row.host_key, []).append(_record(row))
            continue
        host_groups = groups.setdefault(row.host_key, {})
        if row.group_id not in host_groups:
            host_groups[row.group_id] = (row.group_name, _match_policies(memos, row.match_policies))
            flavors[row.host_key, row.group_id] = []
        if row.id is not None:
            flavors[row.host_key, row.group_id].append(_record(row))
    binding_keys = _binding_key_digests(session, [h.id for h in hosts])
    return {
        host.id: _policy_of(
            session,
            host,
            hardware_uuid=uuids.get(host.id),
            groups=groups.get(host.id, {}),
            flavors=flavors,
            own=tuple(own.get(uuids.get(host.id) or "", ())),
            binding_key=binding_keys.get(host.id),
        )
        for host in hosts
    }


def _binding_key_digests(session: Session, host_ids: Sequence[str]) -> dict[str, str]:
    """Each host's binding-key certificate digest, for the hosts that have one (one statement for all)."""
    rows = session.connection().execute(_BINDING_KEYS, {"host_ids": sorted(set(host_ids))}).all()
    return {row.host_id: row.sha384 for row in rows}


def _policy_of(
    session: Session,
    host: Host,
    *,
    hardware_uuid: str | None,
    groups: dict[str, tuple[str, tuple[FlavorMatchPolicy, ...]]],
    flavors: dict[tuple[str, str], list[FlavorRecord]],
    own: tuple[FlavorRecord, ...],
    binding_key: str | None,
) -> HostPolicy:
    judged = tuple(
        GroupPolicy(
            group_id,
            name,
            policies,
            _with_own(tuple(flavors[host.id, group_id]), own if _wants_own(policies) else ()),
        )
        for group_id, (name, policies) in sorted(groups.items(), key=lambda item: item[1][0])
    )
    # Only an ASSET_TAG flavor's TagCertificateTrusted reads the revocations: skip the query without one.
    tagged = any(f.flavor_part == "ASSET_TAG" for g in judged for f in g.flavors)
    revoked = revoked_tag_digests(session, hardware_uuid) if tagged else frozenset()
    return HostPolicy(judged, revoked, binding_key)


def revoked_tag_digests(session: Session, hardware_uuid: str | None) -> frozenset[bytes]:
    """SHA-384 digests of the revoked tag certificates issued for this host."""
    if hardware_uuid is None:
        return frozenset()
    rows = session.scalars(_REVOKED_TAGS, {"hardware_uuid": hardware_uuid.lower()})
    return frozenset(bytes.fromhex(digest) for digest in rows)


def _wants_own(policies: Sequence[FlavorMatchPolicy]) -> bool:
    return any(p.flavor_part in HOST_OWN_PARTS for p in policies)


def _match_policies(memos: Memos, stored: str | None) -> tuple[FlavorMatchPolicy, ...]:
    """A group's match policies from their stored JSON text, validated; remembered per distinct text (a
    fleet has a handful of groups, each read for every report)."""
    memo = memos.match_policies
    text = stored or "[]"
    found = memo.get(text)
    if found is None:
        found = memo.put(text, tuple(FlavorMatchPolicy.model_validate(p) for p in json.loads(text) or ()))
    return found


def _record(row: Any) -> FlavorRecord:
    return FlavorRecord(row.id, row.flavor_part, row.label, row.document, row.signature, row.signature_scheme)


def _with_own(group: tuple[FlavorRecord, ...], own: tuple[FlavorRecord, ...]) -> tuple[FlavorRecord, ...]:
    known = {f.id for f in group}
    return group + tuple(f for f in own if f.id not in known)
