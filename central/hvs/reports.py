"""/hvs/v2/reports: attest a host now (synchronous), and search the stored trust reports.

``POST /hvs/v2/reports {"host_id"}`` (or ``{"host_name"}``) asks the host's trust agent for a fresh quote,
verifies it, evaluates the host's flavor groups and answers the stored report: SecL's trust-report JSON
(``trust_report``: policy_name, results with SecL's rule and fault names, trusted; ``flavors_trust``: per
part) and the signed attestation-result JWT (``jwt``, ES256 with the report-signing key, ``kid`` = SHA-256
thumbprint of its certificate), and ``tags``, the asset tags its trusted ASSET_TAG flavor vouched for (also
in the JWT). Errors (never a 500): 404 ``host-not-found``; 409 ``agent-unreachable``,
``agent-unauthorized``, ``agent-tls-untrusted``, ``agent-bad-response``/``agent-error-status`` when the
agent cannot be asked; 409 ``evidence-invalid`` with ``details.fault`` naming the failed check when its
quote does not verify; 409 ``flavor-signature-invalid`` for a stored flavor that no longer even parses
(one whose signature merely fails is evaluated, and FlavorTrusted says so in the report).

The asynchronous queue, the refresh of reports before they expire and the re-use of a report for
unchanged evidence live in :mod:`secl.central.hvs.jobs` and :mod:`secl.central.hvs.worker` (``secl-central
worker``); this synchronous route always evaluates afresh.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from flask import current_app
from pydantic import BaseModel, Field, model_validator
from secl.central.endpoints import current_principal, endpoint
from secl.central.errors import NotFound
from secl.central.hvs import verifier
from secl.central.hvs.hoststore import get_host
from secl.central.hvs.schemas import Strict
from secl.central.hvs.store_schemas import HostName, UUIDStr
from secl.central.hvs.views import bp
from secl.central.store.db import db
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_report_models import Report
from sqlalchemy import func, select
from sqlalchemy.orm import Session


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


def _out(report: Report | verifier.StoredReport, host: Host) -> ReportOut:
    return ReportOut(
        id=report.id, host_id=host.id, host_name=host.name, hardware_uuid=host.hardware_uuid,
        trusted=report.trusted, created=report.created_at, expiration=report.expires_at,
        evidence_digest=report.evidence_digest, trust_report=report.trust_report,
        flavors_trust=report.flavors_trust, jwt=report.jwt, tags=report.tags or {},
    )  # fmt: skip


def _host(session: Session, body: ReportCreate) -> Host:
    if body.host_id is not None:
        return get_host(session, body.host_id)
    host = session.scalar(select(Host).where(Host.name == body.host_name))
    if host is None:
        raise NotFound(f"no host named {body.host_name}", code="host-not-found")
    return host


@endpoint(bp, "/reports", "POST", permission="HVS:reports:create", body=ReportCreate, response=ReportOut,
          status=201,
          summary="Attest a host now: fresh quote from its trust agent, verified, judged against its flavor "
                  "groups; the stored trust report with its signed attestation-result JWT")  # fmt: skip
def create_report(body: ReportCreate) -> ReportOut:
    session = db()
    host = _host(session, body)
    report = verifier.attest_host(session, current_app, host, actor=current_principal().username)
    return _out(report, host)


@endpoint(bp, "/reports", "GET", permission="HVS:reports:search", query=ReportSearch,
          response=ReportCollection,
          summary="Search trust reports, newest first (id, hostId, hostName, hostHardwareId; latestPerHost "
                  "for each host's newest only; limit)")  # fmt: skip
def search_reports(query: ReportSearch) -> ReportCollection:
    statement = select(Report, Host).join(Host, Host.id == Report.host_id)
    if query.id is not None:
        statement = statement.where(Report.id == query.id)
    if query.hostId is not None:
        statement = statement.where(Report.host_id == query.hostId)
    if query.hostName is not None:
        statement = statement.where(Host.name == query.hostName)
    if query.hostHardwareId is not None:
        statement = statement.where(Host.hardware_uuid == query.hostHardwareId)
    if query.latestPerHost:
        ranked = (
            select(Report.id, func.row_number().over(
                partition_by=Report.host_id, order_by=(Report.created_at.desc(), Report.id.desc())
            ).label("rank"))
        ).subquery()  # fmt: skip
        statement = statement.join(ranked, ranked.c.id == Report.id).where(ranked.c.rank == 1)
    statement = statement.order_by(Report.created_at.desc(), Report.id.desc()).limit(query.limit)
    return ReportCollection(reports=[_out(r, h) for r, h in db().execute(statement)])


@endpoint(bp, "/reports/<report_id>", "GET", permission="HVS:reports:retrieve", response=ReportOut,
          summary="One trust report with its signed attestation-result JWT")  # fmt: skip
def retrieve_report(report_id: str) -> ReportOut:
    session = db()
    report = session.get(Report, report_id)
    if report is None:
        raise NotFound(f"no report {report_id}", code="report-not-found")
    return _out(report, session.get(Host, report.host_id))
