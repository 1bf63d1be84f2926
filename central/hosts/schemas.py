"""Request and response shapes of /hvs/v2/hosts (pydantic, SecL's JSON names)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from secl.central.schemas import ConnectionString, Description, GroupName, HostName, Strict, UUIDStr

# An asset tag to select hosts by, ``name=value`` (tag names never contain "=").
TagFilter = Annotated[str, Field(min_length=3, max_length=512, pattern=r"^[^=]+=[\s\S]+$")]


class HostCreate(Strict):
    host_name: HostName
    connection_string: ConnectionString
    description: Description = ""
    flavorgroup_names: list[GroupName] = Field(default_factory=lambda: ["automatic"], max_length=100)


class HostUpdate(Strict):
    host_name: HostName | None = None
    connection_string: ConnectionString | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _something(self) -> HostUpdate:
        if self.host_name is None and self.connection_string is None and self.description is None:
            raise ValueError("give at least one of host_name, connection_string, description")
        return self


class HostOut(BaseModel):
    id: str
    host_name: str
    connection_string: str
    description: str
    hardware_uuid: str | None
    status: str
    flavorgroup_names: list[str]
    created_at: datetime
    updated_at: datetime
    # From the host's newest report while it is unexpired: trusted or not (null: no such report), and
    # the asset tags it verified.
    trusted: bool | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class HostCollection(BaseModel):
    hosts: list[HostOut]


class HostSearch(Strict):
    id: UUIDStr | None = None
    nameEqualTo: Annotated[str, Field(max_length=255)] | None = None
    nameContains: Annotated[str, Field(max_length=255)] | None = None
    hostHardwareId: UUIDStr | None = None
    # Repeatable: hosts whose newest unexpired report verified every one of these tags.
    tag: Annotated[list[TagFilter], Field(max_length=16)] = Field(default_factory=list)
    # true: the newest report is unexpired and trusted; false: anything else.
    trusted: bool | None = None


class HostFlavorgroupCreate(Strict):
    flavorgroup_id: UUIDStr


class HostFlavorgroupOut(BaseModel):
    host_id: str
    flavorgroup_id: str
