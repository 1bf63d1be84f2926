"""What a caller may hand out: the rule that keeps account management from escalating privileges.

A caller can only grant, create or reset what it already holds:

- a permission is *held* when one of the caller's permissions covers it part by part, where a held ``*``
  covers anything and a granted ``*`` is covered only by a held ``*`` (``HVS:hosts:create`` does not give
  ``HVS:hosts:*``, which would also give every action added later);
- a role may be created, granted or deleted only by a caller who holds every permission in it;
- a user may be given roles, have their password reset or be deleted only by a caller who holds every
  permission that user holds, so only an administrator (``*:*:*``) may touch an administrator.

The caller's authority is what its token says *and* what its account holds now: a token issued before a
role was taken away does not keep the power to grant that role.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from secl.central.auth import permission_matches
from secl.central.store.models import Role, User

EVERY_PERMISSION = "*:*:*"


@dataclass(frozen=True, slots=True)
class Authority:
    """The permissions a caller may hand out: those its token carries that its account still holds."""

    username: str
    token_permissions: tuple[str, ...]
    account_permissions: tuple[str, ...]

    def holds(self, permission: str) -> bool:
        return _covered(self.token_permissions, permission) and _covered(self.account_permissions, permission)

    def lacks(self, permissions: Iterable[str]) -> list[str]:
        """The permissions of ``permissions`` this caller does not hold, sorted, without repeats."""
        return sorted({p for p in permissions if not self.holds(p)})

    @property
    def is_administrator(self) -> bool:
        return self.holds(EVERY_PERMISSION)


def _covered(held: Iterable[str], permission: str) -> bool:
    return any(permission_matches(h, permission) for h in held)


def role_permissions(roles: Iterable[Role]) -> list[str]:
    return sorted({p for role in roles for p in role.permissions})


def is_administrator(user: User) -> bool:
    """A user whose roles cover every permission, by the administrator role or a role of their own."""
    return _covered(role_permissions(user.roles), EVERY_PERMISSION)
