"""Flavor groups in the store: lookups and flavor links shared by the routes and the flavor store.

Kept apart from the route modules so the verifier (and the flavor store) can import it without the views.
"""

from __future__ import annotations

from collections.abc import Sequence

from secl.central.errors import Conflict, NotFound, ValidationFailed
from secl.central.hvs.store_schemas import FlavorMatchPolicy
from secl.central.store.hvs_flavor_models import FlavorGroup, flavorgroup_flavors, host_flavorgroups
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

AUTOMATIC = "automatic"
HOST_UNIQUE = "host_unique"
PLATFORM_SOFTWARE = "platform_software"
WORKLOAD_SOFTWARE = "workload_software"


def get_group(session: Session, group_id: str) -> FlavorGroup:
    group = session.get(FlavorGroup, group_id)
    if group is None:
        raise NotFound(f"no flavor group {group_id}", code="flavorgroup-not-found")
    return group


def groups_by_name(session: Session, names: Sequence[str]) -> list[FlavorGroup]:
    """The groups of these names, in the given order; an unknown name is the caller's error (400)."""
    wanted = list(dict.fromkeys(names))
    found = {g.name: g for g in session.scalars(select(FlavorGroup).where(FlavorGroup.name.in_(wanted)))}
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ValidationFailed(
            f"no flavor group named {', '.join(missing)}: create it first (POST /hvs/v2/flavorgroups)",
            code="flavorgroup-unknown", details={"missing": missing},
        )  # fmt: skip
    return [found[name] for name in wanted]


def host_groups(session: Session, host_id: str) -> list[FlavorGroup]:
    """The flavor groups a host is verified against, by name."""
    return list(
        session.scalars(
            select(FlavorGroup).join(host_flavorgroups, host_flavorgroups.c.flavorgroup_id == FlavorGroup.id)
            .where(host_flavorgroups.c.host_id == host_id).order_by(FlavorGroup.name)
        )
    )  # fmt: skip


def match_policies(group: FlavorGroup) -> list[FlavorMatchPolicy]:
    return [FlavorMatchPolicy.model_validate(p) for p in group.match_policies]


def link_flavor(session: Session, group: FlavorGroup, flavor_id: str) -> None:
    """Add a flavor to a group in the session (the caller commits); an existing link is a 409."""
    exists = session.scalar(
        select(func.count()).select_from(flavorgroup_flavors).where(
            flavorgroup_flavors.c.flavorgroup_id == group.id, flavorgroup_flavors.c.flavor_id == flavor_id
        )
    )  # fmt: skip
    if exists:
        raise Conflict(f"flavor {flavor_id} is already in flavor group {group.name}", code="link-exists")
    session.execute(insert(flavorgroup_flavors).values(flavorgroup_id=group.id, flavor_id=flavor_id))
