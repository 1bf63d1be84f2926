"""Request and response shapes of /hvs/v2/reports and /hvs/v2/report-jobs (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from secl.central.schemas import HostName, Strict, UUIDStr


class ReportCreate(Strict):
    host_id: UUIDStr | None = None
    host_name: HostName | None = None

    @model_validator(mode="after")
    def _one(self) -> ReportCreate:
        if (self.host_id is None) == (self.host_name is None):
            raise ValueError("give host_id or host_name (exactly one)")
        return self


class ReportOut(BaseModel):
    id: str
    host_id: str
    host_name: str
    hardware_uuid: str | None
    trusted: bool
    created: datetime
    expiration: datetime
    evidence_digest: str
    trust_report: dict[str, Any]
    flavors_trust: dict[str, Any]
    jwt: str
    tags: dict[str, str]  # the asset tags the report verified (also in the JWT)


class ReportCollection(BaseModel):
    reports: list[ReportOut]


class ReportSearch(Strict):
    id: UUIDStr | None = None
    hostId: UUIDStr | None = None
    hostName: Annotated[str, Field(max_length=255)] | None = None
    hostHardwareId: UUIDStr | None = None
    latestPerHost: bool = False
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


# --- the queue --------------------------------------------------------------------------------------------


class ReportQueueRequest(Strict):
    host_ids: Annotated[list[UUIDStr], Field(min_length=1, max_length=1000)] | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one(self) -> ReportQueueRequest:
        if (self.host_ids is not None) == self.all:
            raise ValueError('give host_ids or "all": true (exactly one)')
        return self


class ReportJobOut(BaseModel):
    id: str
    host_id: str
    status: Literal["queued", "running", "done", "failed"]
    reason: str
    attempts: int
    max_attempts: int
    created_at: datetime
    created_by: str
    available_at: datetime
    claimed_by: str | None
    lease_expires_at: datetime | None
    finished_at: datetime | None
    report_id: str | None
    reused: bool
    error_code: str | None
    error_message: str | None
    result: dict[str, Any]


class ReportJobCollection(BaseModel):
    jobs: list[ReportJobOut]


class ReportJobSearch(Strict):
    status: Literal["queued", "running", "done", "failed"] | None = None
    hostId: UUIDStr | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
