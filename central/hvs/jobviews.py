"""/hvs/v2: queue hosts for asynchronous attestation, and follow the report jobs.

``POST /hvs/v2/reports/queue {"host_ids": [...]}`` (or ``{"all": true}`` for every registered host) answers
202 with one job per host: a new queued job, or the host's job that is already queued or running (a host
is never queued twice). ``secl-central worker`` processes attest the hosts and store their reports
(:mod:`secl.central.hvs.worker`); ``GET /hvs/v2/report-jobs`` shows the jobs, with the report each one
made, whether that report re-used the previous one for unchanged evidence, or the error code of its last
failure. 404 ``host-not-found`` when a host id is not registered.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator
from secl.central.endpoints import current_principal, endpoint
from secl.central.errors import NotFound
from secl.central.hvs import jobs
from secl.central.hvs.schemas import Strict
from secl.central.hvs.store_schemas import UUIDStr
from secl.central.hvs.views import bp
from secl.central.store.db import db
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_job_models import ReportJob
from sqlalchemy import select


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


def _out(job: ReportJob) -> ReportJobOut:
    return ReportJobOut(
        id=job.id, host_id=job.host_id, status=job.status, reason=job.reason, attempts=job.attempts,
        max_attempts=job.max_attempts, created_at=job.created_at, created_by=job.created_by,
        available_at=job.available_at, claimed_by=job.claimed_by, lease_expires_at=job.lease_expires_at,
        finished_at=job.finished_at, report_id=job.report_id, reused=job.reused, error_code=job.error_code,
        error_message=job.error_message, result=job.result or {},
    )  # fmt: skip


@endpoint(bp, "/reports/queue", "POST", permission="HVS:reports:create", body=ReportQueueRequest,
          response=ReportJobCollection, status=202,
          summary="Queue hosts (host_ids, or all) for attestation by the secl-central workers; one job per "
                  "host (a host already queued or running keeps its job)")  # fmt: skip
def queue_reports(body: ReportQueueRequest) -> ReportJobCollection:
    session = db()
    if body.all:
        host_ids = list(session.scalars(select(Host.id).order_by(Host.name)))
    else:
        assert body.host_ids is not None
        host_ids = list(dict.fromkeys(body.host_ids))
        known = set(session.scalars(select(Host.id).where(Host.id.in_(host_ids))))
        missing = [h for h in host_ids if h not in known]
        if missing:
            raise NotFound(f"no host {missing[0]}", code="host-not-found", details={"host_ids": missing})
    queued = jobs.enqueue(session, host_ids, actor=current_principal().username)
    return ReportJobCollection(jobs=[_out(job) for job in queued])


@endpoint(bp, "/report-jobs", "GET", permission="HVS:reports:search", query=ReportJobSearch,
          response=ReportJobCollection,
          summary="Report jobs, newest first (status, hostId, limit)")  # fmt: skip
def search_report_jobs(query: ReportJobSearch) -> ReportJobCollection:
    found = jobs.search(db(), status=query.status, host_id=query.hostId, limit=query.limit)
    return ReportJobCollection(jobs=[_out(job) for job in found])
