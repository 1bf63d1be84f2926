"""/hvs/v2/reports and /hvs/v2/report-jobs: attest a host now, search the stored trust reports, and queue
hosts for the ``secl-central worker`` processes.

``POST /hvs/v2/reports {"host_id"}`` (or ``{"host_name"}``) asks the host's trust agent for a fresh quote,
verifies it, evaluates the host's flavor groups and answers the stored report: SecL's trust-report JSON and
the signed attestation-result JWT (``jwt``, ES256 with the report-signing key, ``kid`` = SHA-256 thumbprint of
its certificate), and ``tags``. Errors (never a 500): 404 ``host-not-found``; 409 ``agent-unreachable``,
``agent-unauthorized``, ``agent-tls-untrusted``, ``agent-bad-response``/``agent-error-status`` when the
agent cannot be asked; 409 ``evidence-invalid`` with ``details.fault`` naming the failed check when its
quote does not verify; 409 ``flavor-signature-invalid`` for a stored flavor that no longer even parses
(one whose signature merely fails is evaluated, and FlavorTrusted says so in the report).

``POST /hvs/v2/reports/queue {"host_ids": [...]}`` (or ``{"all": true}`` for every registered host) answers
202 with one job per host: a new queued job, or the host's job that is already queued or running (a host
is never queued twice). ``GET /hvs/v2/report-jobs`` shows the jobs, with the report each one made, whether
that report re-used the previous one for unchanged evidence, or the error code of its last failure.
"""

from __future__ import annotations

from flask import Blueprint

from secl.central.endpoints import current_principal, db, endpoint, services
from secl.central.hosts.service import get_host, get_host_by_name
from secl.central.reports import jobs, service
from secl.central.reports.schemas import (
    ReportCollection,
    ReportCreate,
    ReportJobCollection,
    ReportJobOut,
    ReportJobSearch,
    ReportOut,
    ReportQueueRequest,
    ReportSearch,
)
from secl.central.reports.sign import StoredReport
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_job_models import ReportJob
from secl.central.store.hvs_report_models import Report

bp = Blueprint("reports", __name__, url_prefix="/hvs/v2")


def _out(report: Report | StoredReport, host: Host) -> ReportOut:
    return ReportOut(
        id=report.id,
        host_id=host.id,
        host_name=host.name,
        hardware_uuid=host.hardware_uuid,
        trusted=report.trusted,
        created=report.created_at,
        expiration=report.expires_at,
        evidence_digest=report.evidence_digest,
        trust_report=report.trust_report,
        flavors_trust=report.flavors_trust,
        jwt=report.jwt,
        tags=report.tags or {},
    )


def _job_out(job: ReportJob) -> ReportJobOut:
    return ReportJobOut(
        id=job.id,
        host_id=job.host_id,
        status=job.status,
        reason=job.reason,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        created_at=job.created_at,
        created_by=job.created_by,
        available_at=job.available_at,
        claimed_by=job.claimed_by,
        lease_expires_at=job.lease_expires_at,
        finished_at=job.finished_at,
        report_id=job.report_id,
        reused=job.reused,
        error_code=job.error_code,
        error_message=job.error_message,
        result=job.result or {},
    )


@endpoint(
    bp,
    "/reports",
    "POST",
    permission="HVS:reports:create",
    body=ReportCreate,
    response=ReportOut,
    status=201,
    summary="Attest a host now: fresh quote from its trust agent, verified, judged against its flavor "
    "groups; the stored trust report with its signed attestation-result JWT",
)
def create_report(body: ReportCreate) -> ReportOut:
    session = db()
    host = (
        get_host(session, body.host_id)
        if body.host_id is not None
        else get_host_by_name(session, body.host_name)
    )
    report = service.attest_host(session, services(), host, actor=current_principal().username)
    return _out(report, host)


@endpoint(
    bp,
    "/reports",
    "GET",
    permission="HVS:reports:search",
    query=ReportSearch,
    response=ReportCollection,
    summary="Search trust reports, newest first (id, hostId, hostName, hostHardwareId; latestPerHost "
    "for each host's newest only; limit)",
)
def search_reports(query: ReportSearch) -> ReportCollection:
    found = service.search_reports(
        db(),
        report_id=query.id,
        host_id=query.hostId,
        host_name=query.hostName,
        hardware_uuid=query.hostHardwareId,
        latest_per_host=query.latestPerHost,
        limit=query.limit,
    )
    return ReportCollection(reports=[_out(r, h) for r, h in found])


@endpoint(
    bp,
    "/reports/<report_id>",
    "GET",
    permission="HVS:reports:retrieve",
    response=ReportOut,
    summary="One trust report with its signed attestation-result JWT",
)
def retrieve_report(report_id: str) -> ReportOut:
    return _out(*service.get_report(db(), report_id))


@endpoint(
    bp,
    "/reports/queue",
    "POST",
    permission="HVS:reports:create",
    body=ReportQueueRequest,
    response=ReportJobCollection,
    status=202,
    summary="Queue hosts (host_ids, or all) for attestation by the secl-central workers; one job per "
    "host (a host already queued or running keeps its job)",
)
def queue_reports(body: ReportQueueRequest) -> ReportJobCollection:
    queued = service.queue_hosts(
        db(), None if body.all else body.host_ids, actor=current_principal().username
    )
    return ReportJobCollection(jobs=[_job_out(job) for job in queued])


@endpoint(
    bp,
    "/report-jobs",
    "GET",
    permission="HVS:reports:search",
    query=ReportJobSearch,
    response=ReportJobCollection,
    summary="Report jobs, newest first (status, hostId, limit)",
)
def search_report_jobs(query: ReportJobSearch) -> ReportJobCollection:
    found = jobs.search(db(), status=query.status, host_id=query.hostId, limit=query.limit)
    return ReportJobCollection(jobs=[_job_out(job) for job in found])
