"""AAS operations on the store. Views call these; they raise ServiceError subclasses for the caller's faults."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.aas.passwords import dummy_hash, hash_password, needs_rehash, verify_password
from secl.central.aas.privileges import Authority, is_administrator, role_permissions
from secl.central.aas.tokens import TokenService
from secl.central.auth import Principal
from secl.central.errors import Conflict, Forbidden, Invalid, Locked, NotFound, Unauthorized
from secl.central.store.models import AuditEvent, Role, User, utcnow

ADMIN_ROLE = "administrator"
ADMIN_PERMISSIONS = ["*:*:*"]


def authenticate_user(
    session: Session, username: str, password: str, *, threshold: int, lockout: timedelta
) -> User:
    """Check a password, counting failures in the database so lockout holds across restarts and instances."""
    user = session.scalar(select(User).where(User.username == username))
    now = utcnow()
    if user is None:
        verify_password(password, dummy_hash())  # same cost as a real check: no username oracle by timing
        audit.record(session, "login.failed", actor=username, outcome="failure", reason="unknown user")
        session.commit()
        raise Unauthorized("wrong username or password", code="login-failed")
    if user.locked_until is not None and user.locked_until > now:
        audit.record(session, "login.refused", actor=username, outcome="failure", reason="locked")
        session.commit()
        raise Locked(
            f"the account is locked until {user.locked_until.isoformat()} after repeated failed logins"
        )
    if not verify_password(password, user.password_hash):
        _count_failure(session, user, now, threshold, lockout)
        raise Unauthorized("wrong username or password", code="login-failed")
    if user.failed_logins or user.locked_until:
        user.failed_logins, user.locked_until = 0, None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def _count_failure(session: Session, user: User, now: datetime, threshold: int, lockout: timedelta) -> None:
    # One atomic UPDATE: concurrent failures on two instances each count, none is lost.
    session.execute(update(User).where(User.id == user.id).values(failed_logins=User.failed_logins + 1))
    session.refresh(user)
    locked = user.failed_logins >= threshold
    if locked:
        user.locked_until, user.failed_logins = now + lockout, 0
    audit.record(
        session,
        "login.failed",
        actor=user.username,
        outcome="failure",
        reason="wrong password",
        locked=locked,
    )
    session.commit()


def issue_token(
    session: Session,
    tokens: TokenService,
    username: str,
    password: str,
    *,
    threshold: int,
    lockout: timedelta,
) -> tuple[str, datetime]:
    """A signed JWT for a user whose password checks out, carrying its roles and permissions (audited)."""
    user = authenticate_user(session, username, password, threshold=threshold, lockout=lockout)
    roles, permissions = effective_permissions(user)
    token, expires = tokens.issue(user.username, roles, permissions)
    audit.record(session, "token.issued", actor=user.username, outcome="success", roles=roles)
    session.commit()
    return token, expires


def effective_permissions(user: User) -> tuple[list[str], list[str]]:
    roles = sorted(role.name for role in user.roles)
    permissions = sorted({p for role in user.roles for p in role.permissions})
    return roles, permissions


def roles_by_name(session: Session, names: Sequence[str]) -> list[Role]:
    roles = list(session.scalars(select(Role).where(Role.name.in_(names))))
    missing = sorted(set(names) - {r.name for r in roles})
    if missing:
        raise Invalid(f"no such role: {', '.join(missing)}", code="unknown-role")
    return roles


def authority_of(session: Session, principal: Principal) -> Authority:
    """What the caller may hand out: its token's permissions, bounded by what its account holds now."""
    account = session.scalar(select(User).where(User.username == principal.username))
    held = role_permissions(account.roles) if account is not None else []
    return Authority(principal.username, principal.permissions, tuple(held))


def create_user(
    session: Session, username: str, password: str, role_names: Sequence[str], *, caller: Authority
) -> User:
    roles = roles_by_name(session, role_names)
    _require_grantable(session, caller, roles, operation="user.create", target=username)
    user = User(username=username, password_hash=hash_password(password), roles=roles)
    session.add(user)
    audit.record(
        session,
        "user.created",
        actor=caller.username,
        outcome="success",
        target=username,
        roles=list(role_names),
    )
    _commit_unique(session, f"a user named {username!r} already exists")
    return user


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def search_users(session: Session, name: str | None) -> list[User]:
    query = select(User).order_by(User.username)
    if name:
        query = query.where(User.username == name)
    return list(session.scalars(query))


def delete_user(session: Session, user_id: str, *, caller: Authority) -> None:
    user = get_user(session, user_id)
    _require_authority_over(session, caller, user, operation="user.delete")
    session.delete(user)
    audit.record(session, "user.deleted", actor=caller.username, outcome="success", target=user.username)
    session.commit()


def set_user_roles(session: Session, user_id: str, role_names: Sequence[str], *, caller: Authority) -> User:
    user = get_user(session, user_id)
    _require_authority_over(session, caller, user, operation="user.roles-change")
    roles = roles_by_name(session, role_names)
    _require_grantable(session, caller, roles, operation="user.roles-change", target=user.username)
    before = sorted(r.name for r in user.roles)
    user.roles = roles
    audit.record(
        session,
        "user.roles-changed",
        actor=caller.username,
        outcome="success",
        target=user.username,
        before=before,
        after=sorted(role_names),
    )
    session.commit()
    return user


def change_password(
    session: Session, username: str, old: str, new: str, *, threshold: int, lockout: timedelta
) -> None:
    user = authenticate_user(session, username, old, threshold=threshold, lockout=lockout)
    _set_password(session, user, new, actor=username)


def reset_password(session: Session, user_id: str, new: str, *, caller: Authority) -> None:
    user = get_user(session, user_id)
    _require_authority_over(session, caller, user, operation="user.password-reset")
    _set_password(session, user, new, actor=caller.username)


def _set_password(session: Session, user: User, new: str, *, actor: str) -> None:
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    user.failed_logins, user.locked_until = 0, None
    audit.record(session, "user.password-changed", actor=actor, outcome="success", target=user.username)
    session.commit()


def create_role(
    session: Session, name: str, description: str, permissions: list[str], *, caller: Authority
) -> Role:
    _require_held(session, caller, permissions, operation="role.create", target=name)
    role = Role(name=name, description=description, permissions=permissions)
    session.add(role)
    audit.record(
        session,
        "role.created",
        actor=caller.username,
        outcome="success",
        target=name,
        permissions=permissions,
    )
    _commit_unique(session, f"a role named {name!r} already exists")
    return role


def get_role(session: Session, role_id: str) -> Role:
    role = session.get(Role, role_id)
    if role is None:
        raise NotFound(f"no role with id {role_id}")
    return role


def search_roles(session: Session, name: str | None) -> list[Role]:
    query = select(Role).order_by(Role.name)
    if name:
        query = query.where(Role.name == name)
    return list(session.scalars(query))


def delete_role(session: Session, role_id: str, *, caller: Authority) -> None:
    role = get_role(session, role_id)
    if role.name == ADMIN_ROLE:
        raise Conflict("the administrator role cannot be deleted", code="role-protected")
    _require_held(session, caller, role.permissions, operation="role.delete", target=role.name)
    session.delete(role)
    audit.record(session, "role.deleted", actor=caller.username, outcome="success", target=role.name)
    session.commit()


def search_audit(
    session: Session, *, action: str | None, actor: str | None, since: datetime | None, limit: int
) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if since:
        query = query.where(AuditEvent.at >= since)
    return list(session.scalars(query))


def ensure_admin(session: Session, username: str, password: str) -> tuple[User, bool]:
    """Create the administrator role and an administrator user unless they exist; return (user, created)."""
    role = session.scalar(select(Role).where(Role.name == ADMIN_ROLE))
    if role is None:
        role = Role(
            name=ADMIN_ROLE, description="every permission of every service", permissions=ADMIN_PERMISSIONS
        )
        session.add(role)
    user = session.scalar(select(User).where(User.username == username))
    created = user is None
    if user is None:
        user = User(username=username, password_hash=hash_password(password), roles=[role])
        session.add(user)
        audit.record(
            session,
            "user.created",
            actor="secl-central",
            outcome="success",
            target=username,
            roles=[ADMIN_ROLE],
        )
    session.commit()
    return user, created


def _commit_unique(session: Session, message: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(message, code="already-exists") from None


def _require_grantable(
    session: Session, caller: Authority, roles: Sequence[Role], *, operation: str, target: str
) -> None:
    """Refuse to hand out a role holding a permission the caller does not hold itself."""
    _require_held(session, caller, role_permissions(roles), operation=operation, target=target)


def _require_held(
    session: Session, caller: Authority, permissions: Sequence[str], *, operation: str, target: str
) -> None:
    missing = caller.lacks(permissions)
    if missing:
        message = f"you cannot grant permissions you do not hold yourself: {', '.join(missing)}"
        _refuse(session, caller, message, code="privilege-not-held", operation=operation, target=target)


def _require_authority_over(session: Session, caller: Authority, user: User, *, operation: str) -> None:
    """Refuse to touch a user who holds a permission the caller lacks (an administrator, above all)."""
    missing = caller.lacks(role_permissions(user.roles))
    if not missing:
        return
    if is_administrator(user):
        message, code = (
            "only an administrator may change an administrator's account",
            "administrator-protected",
        )
    else:
        message = f"{user.username} holds permissions you do not hold: {', '.join(missing)}"
        code = "privilege-not-held"
    _refuse(session, caller, message, code=code, operation=operation, target=user.username)


def _refuse(
    session: Session, caller: Authority, message: str, *, code: str, operation: str, target: str
) -> None:
    """Audit the refusal (alone, in its own transaction) and raise it."""
    session.rollback()
    audit.record(
        session,
        "privilege.refused",
        actor=caller.username,
        outcome="failure",
        target=target,
        operation=operation,
        reason=code,
        message=message,
    )
    session.commit()
    raise Forbidden(message, code=code)
