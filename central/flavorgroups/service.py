"""Flavor groups: SecL's match policies per flavor part, and which flavors belong to which group.

A group says, per flavor part, how a host's flavors are matched (ANY_OF, ALL_OF, LATEST) and whether the part
must be present (REQUIRED, REQUIRED_IF_DEFINED). SecL's four default groups (``automatic``, ``host_unique``,
``platform_software``, ``workload_software``) are created by migration 0004 and cannot be deleted. A group
still linked to hosts cannot be deleted either (the hosts would silently lose their policy); its flavor
links go with it, the flavors stay.

The lookups (:func:`get_group`, :func:`groups_by_name`, :func:`host_groups`, :func:`link_flavor`) add to
the session without committing; they are shared with the hosts, the flavor store and the verifier. The
operations below them commit, with their audit event.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.errors import Conflict, Invalid, NotFound
from secl.central.flavorgroups.schemas import FlavorMatchPolicy
from secl.central.store.db import rowcount
from secl.central.store.hvs_flavor_models import (
    FlavorGroup,
    StoredFlavor,
    flavorgroup_flavors,
    host_flavorgroups,
)

AUTOMATIC = "automatic"
HOST_UNIQUE = "host_unique"
PLATFORM_SOFTWARE = "platform_software"
WORKLOAD_SOFTWARE = "workload_software"


# --- lookups ----------------------------------------------------------------------------------------------


def get_group(session: Session, group_id: str) -> FlavorGroup:
    group = session.get(FlavorGroup, group_id)
    if group is None:
        raise NotFound(f"no flavor group {group_id}", code="flavorgroup-not-found")
    return group


def groups_by_name(session: Session, names: Sequence[str]) -> list[FlavorGroup]:
    """The groups of these names, in the given order; an unknown name is the caller's error (Invalid)."""
    wanted = list(dict.fromkeys(names))
    found = {g.name: g for g in session.scalars(select(FlavorGroup).where(FlavorGroup.name.in_(wanted)))}
    missing = [name for name in wanted if name not in found]
    if missing:
        raise Invalid(
            f"no flavor group named {', '.join(missing)}: create it first (POST /hvs/v2/flavorgroups)",
            code="flavorgroup-unknown",
            details={"missing": missing},
        )
    return [found[name] for name in wanted]


def host_groups(session: Session, host_id: str) -> list[FlavorGroup]:
    """The flavor groups a host is verified against, by name."""
    return list(
        session.scalars(
            select(FlavorGroup)
            .join(host_flavorgroups, host_flavorgroups.c.flavorgroup_id == FlavorGroup.id)
            .where(host_flavorgroups.c.host_id == host_id)
            .order_by(FlavorGroup.name)
        )
    )


def match_policies(group: FlavorGroup) -> list[FlavorMatchPolicy]:
    return [FlavorMatchPolicy.model_validate(p) for p in group.match_policies]


def link_flavor(session: Session, group: FlavorGroup, flavor_id: str) -> None:
    """Add a flavor to a group in the session (the caller commits); an existing link is a Conflict."""
    exists = session.scalar(
        select(func.count())
        .select_from(flavorgroup_flavors)
        .where(flavorgroup_flavors.c.flavorgroup_id == group.id, flavorgroup_flavors.c.flavor_id == flavor_id)
    )
    if exists:
        raise Conflict(f"flavor {flavor_id} is already in flavor group {group.name}", code="link-exists")
    session.execute(insert(flavorgroup_flavors).values(flavorgroup_id=group.id, flavor_id=flavor_id))


# --- operations -------------------------------------------------------------------------------------------


def create_group(
    session: Session, name: str, policies: Sequence[FlavorMatchPolicy], *, actor: str
) -> FlavorGroup:
    if session.scalar(select(FlavorGroup).where(FlavorGroup.name == name)) is not None:
        raise Conflict(f"a flavor group named {name} exists", code="flavorgroup-exists")
    group = FlavorGroup(name=name, match_policies=[p.model_dump() for p in policies], is_default=False)
    session.add(group)
    session.flush()
    audit.record(
        session, "flavorgroup.created", actor=actor, outcome="success", target=name, flavorgroup_id=group.id
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"a flavor group named {name} exists", code="flavorgroup-exists") from None
    return group


def search_groups(
    session: Session, *, group_id: str | None, name_equal_to: str | None, name_contains: str | None
) -> list[FlavorGroup]:
    statement = select(FlavorGroup).order_by(FlavorGroup.name)
    if group_id is not None:
        statement = statement.where(FlavorGroup.id == group_id)
    if name_equal_to is not None:
        statement = statement.where(FlavorGroup.name == name_equal_to)
    if name_contains is not None:
        statement = statement.where(FlavorGroup.name.contains(name_contains, autoescape=True))
    return list(session.scalars(statement))


def delete_group(session: Session, group_id: str, *, actor: str) -> None:
    group = get_group(session, group_id)
    if group.is_default:
        raise Conflict(
            f"{group.name} is a default flavor group and cannot be deleted", code="flavorgroup-default"
        )
    hosts = session.scalar(
        select(func.count())
        .select_from(host_flavorgroups)
        .where(host_flavorgroups.c.flavorgroup_id == group.id)
    )
    if hosts:
        raise Conflict(
            f"{hosts} host(s) are linked to flavor group {group.name}; unlink them first",
            code="flavorgroup-in-use",
        )
    session.delete(group)
    audit.record(
        session,
        "flavorgroup.deleted",
        actor=actor,
        outcome="success",
        target=group.name,
        flavorgroup_id=group.id,
    )
    session.commit()


def add_flavor(session: Session, group_id: str, flavor_id: str, *, actor: str) -> FlavorGroup:
    group = get_group(session, group_id)
    if session.get(StoredFlavor, flavor_id) is None:
        raise NotFound(f"no flavor {flavor_id}", code="flavor-not-found")
    link_flavor(session, group, flavor_id)
    audit.record(
        session,
        "flavorgroup.flavor-linked",
        actor=actor,
        outcome="success",
        target=group.name,
        flavorgroup_id=group.id,
        flavor_id=flavor_id,
    )
    try:
        session.commit()
    except IntegrityError:  # linked meanwhile, or the flavor deleted meanwhile
        session.rollback()
        raise Conflict(
            f"flavor {flavor_id} cannot be linked to {group.name} now", code="link-exists"
        ) from None
    return group


def group_flavor_ids(session: Session, group_id: str) -> tuple[FlavorGroup, list[str]]:
    group = get_group(session, group_id)
    ids = session.scalars(
        select(flavorgroup_flavors.c.flavor_id)
        .where(flavorgroup_flavors.c.flavorgroup_id == group.id)
        .order_by(flavorgroup_flavors.c.flavor_id)
    )
    return group, list(ids)


def remove_flavor(session: Session, group_id: str, flavor_id: str, *, actor: str) -> None:
    group = get_group(session, group_id)
    removed = rowcount(
        session.execute(
            delete(flavorgroup_flavors).where(
                flavorgroup_flavors.c.flavorgroup_id == group.id, flavorgroup_flavors.c.flavor_id == flavor_id
            )
        )
    )
    if not removed:
        session.rollback()
        raise NotFound(f"flavor {flavor_id} is not in flavor group {group.name}", code="link-not-found")
    audit.record(
        session,
        "flavorgroup.flavor-unlinked",
        actor=actor,
        outcome="success",
        target=group.name,
        flavorgroup_id=group.id,
        flavor_id=flavor_id,
    )
    session.commit()
