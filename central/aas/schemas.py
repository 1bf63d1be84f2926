"""Request and response shapes of /aas/v1 (pydantic); they also generate the OpenAPI schemas."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator

from secl.central.schemas import Strict

_PERMISSION = re.compile(r"^[A-Za-z*][A-Za-z0-9_*-]*:[A-Za-z*][A-Za-z0-9_*-]*:[A-Za-z*][A-Za-z0-9_*-]*$")
Username = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._@-]+$")]
Password = Annotated[str, Field(min_length=1, max_length=1024)]
NewPassword = Annotated[str, Field(min_length=12, max_length=1024)]
RoleName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9._:-]+$")]


class TokenRequest(Strict):
    username: Username
    password: Password


class TokenResponse(BaseModel):
    token: str
    token_type: str = "Bearer"
    expires_at: datetime


class UserCreate(Strict):
    username: Username
    password: NewPassword
    roles: list[RoleName] = Field(default_factory=list, max_length=100)


class UserOut(BaseModel):
    id: str
    username: str
    roles: list[str]
    created_at: datetime
    locked_until: datetime | None


class UserSearch(Strict):
    name: Annotated[str, Field(max_length=255)] | None = None


class PasswordChange(Strict):
    old_password: Password
    new_password: NewPassword


class PasswordReset(Strict):
    new_password: NewPassword


class UserRolesUpdate(Strict):
    roles: list[RoleName] = Field(min_length=1, max_length=100)


class RoleCreate(Strict):
    name: RoleName
    description: Annotated[str, Field(max_length=1000)] = ""
    permissions: list[Annotated[str, Field(max_length=255)]] = Field(min_length=1, max_length=500)

    @field_validator("permissions")
    @classmethod
    def _permissions_are_service_resource_action(cls, value: list[str]) -> list[str]:
        for permission in value:
            if not _PERMISSION.match(permission):
                raise ValueError(f"{permission!r} is not service:resource:action (wildcard: *)")
        if len(set(value)) != len(value):
            raise ValueError("a permission is listed twice")
        return value


class RoleOut(BaseModel):
    id: str
    name: str
    description: str
    permissions: list[str]
    created_at: datetime


class RoleSearch(Strict):
    name: Annotated[str, Field(max_length=255)] | None = None


class AuditSearch(Strict):
    action: Annotated[str, Field(max_length=64)] | None = None
    actor: Annotated[str, Field(max_length=255)] | None = None
    since: datetime | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    remote_addr: str
    details: dict[str, Any]
