"""/aas/v1: tokens, users, roles, password changes and the audit log. Views stay thin: parse, call, render."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint

from secl.central.aas import service
from secl.central.aas.privileges import Authority
from secl.central.aas.schemas import (
    AuditEventOut,
    AuditSearch,
    PasswordChange,
    PasswordReset,
    RoleCreate,
    RoleOut,
    RoleSearch,
    TokenRequest,
    TokenResponse,
    UserCreate,
    UserOut,
    UserRolesUpdate,
    UserSearch,
)
from secl.central.endpoints import AUTHENTICATED, PUBLIC, current_principal, db, endpoint, services
from secl.central.store.models import Role, User
from secl.central.versions import add_version_route

bp = Blueprint("aas", __name__, url_prefix="/aas/v1")
add_version_route(bp, "AAS", "v1")


def _lockout() -> dict[str, Any]:
    config = services().config
    return {"threshold": config.lockout_threshold, "lockout": timedelta(seconds=config.lockout_seconds)}


def _caller() -> Authority:
    return service.authority_of(db(), current_principal())


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        roles=sorted(r.name for r in user.roles),
        created_at=user.created_at,
        locked_until=user.locked_until,
    )


def _role_out(role: Role) -> RoleOut:
    return RoleOut(
        id=role.id,
        name=role.name,
        description=role.description,
        permissions=role.permissions,
        created_at=role.created_at,
    )


@endpoint(
    bp,
    "/token",
    "POST",
    permission=PUBLIC,
    body=TokenRequest,
    response=TokenResponse,
    summary="Exchange a username and password for a signed JWT",
)
def issue_token(body: TokenRequest) -> TokenResponse:
    token, expires = service.issue_token(db(), services().tokens, body.username, body.password, **_lockout())
    return TokenResponse(token=token, expires_at=expires)


@endpoint(
    bp,
    "/password",
    "POST",
    permission=AUTHENTICATED,
    body=PasswordChange,
    summary="Change the caller's own password (the old one is required)",
)
def change_own_password(body: PasswordChange) -> None:
    service.change_password(
        db(), current_principal().username, body.old_password, body.new_password, **_lockout()
    )


@endpoint(
    bp,
    "/users",
    "POST",
    permission="AAS:users:create",
    body=UserCreate,
    response=UserOut,
    status=201,
    summary="Create a user",
)
def create_user(body: UserCreate) -> UserOut:
    user = service.create_user(db(), body.username, body.password, body.roles, caller=_caller())
    return _user_out(user)


@endpoint(
    bp,
    "/users",
    "GET",
    permission="AAS:users:search",
    query=UserSearch,
    response=list[UserOut],
    summary="List users, optionally by name",
)
def search_users(query: UserSearch) -> list[UserOut]:
    return [_user_out(u) for u in service.search_users(db(), query.name)]


@endpoint(
    bp, "/users/<user_id>", "GET", permission="AAS:users:retrieve", response=UserOut, summary="Get a user"
)
def get_user(user_id: str) -> UserOut:
    return _user_out(service.get_user(db(), user_id))


@endpoint(bp, "/users/<user_id>", "DELETE", permission="AAS:users:delete", summary="Delete a user")
def delete_user(user_id: str) -> None:
    service.delete_user(db(), user_id, caller=_caller())


@endpoint(
    bp,
    "/users/<user_id>/roles",
    "PUT",
    permission="AAS:users:update",
    body=UserRolesUpdate,
    response=UserOut,
    summary="Replace a user's roles",
)
def set_user_roles(user_id: str, body: UserRolesUpdate) -> UserOut:
    return _user_out(service.set_user_roles(db(), user_id, body.roles, caller=_caller()))


@endpoint(
    bp,
    "/users/<user_id>/password",
    "PUT",
    permission="AAS:users:update",
    body=PasswordReset,
    summary="Set another user's password (administrators)",
)
def reset_password(user_id: str, body: PasswordReset) -> None:
    service.reset_password(db(), user_id, body.new_password, caller=_caller())


@endpoint(
    bp,
    "/roles",
    "POST",
    permission="AAS:roles:create",
    body=RoleCreate,
    response=RoleOut,
    status=201,
    summary="Create a role holding service:resource:action permissions",
)
def create_role(body: RoleCreate) -> RoleOut:
    role = service.create_role(db(), body.name, body.description, body.permissions, caller=_caller())
    return _role_out(role)


@endpoint(
    bp,
    "/roles",
    "GET",
    permission="AAS:roles:search",
    query=RoleSearch,
    response=list[RoleOut],
    summary="List roles, optionally by name",
)
def search_roles(query: RoleSearch) -> list[RoleOut]:
    return [_role_out(r) for r in service.search_roles(db(), query.name)]


@endpoint(
    bp, "/roles/<role_id>", "GET", permission="AAS:roles:retrieve", response=RoleOut, summary="Get a role"
)
def get_role(role_id: str) -> RoleOut:
    return _role_out(service.get_role(db(), role_id))


@endpoint(bp, "/roles/<role_id>", "DELETE", permission="AAS:roles:delete", summary="Delete a role")
def delete_role(role_id: str) -> None:
    service.delete_role(db(), role_id, caller=_caller())


@endpoint(
    bp,
    "/audit-events",
    "GET",
    permission="AAS:audit:search",
    query=AuditSearch,
    response=list[AuditEventOut],
    summary="Search the security audit log, newest first",
)
def search_audit(query: AuditSearch) -> list[AuditEventOut]:
    events = service.search_audit(
        db(), action=query.action, actor=query.actor, since=query.since, limit=query.limit
    )
    return [AuditEventOut.model_validate(e, from_attributes=True) for e in events]
