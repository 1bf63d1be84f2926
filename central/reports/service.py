"""Reports: attest a host now (evidence collected, verified, judged, signed and stored), and search the
stored trust reports.

A report is SecL's trust-report JSON (``trust_report``: policy_name, results with SecL's rule and fault
names, trusted; ``flavors_trust``: per part), the signed attestation-result JWT, and ``tags``, the asset tags
its trusted ASSET_TAG flavor vouched for (also in the JWT). The asynchronous queue, the refresh of reports
before they expire and the re-use of a report for unchanged evidence live in :mod:`secl.central.reports.jobs`
and :mod:`secl.central.reports.worker`; :func:`attest_host` always evaluates afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from secl.central.context import CentralServices
from secl.central.errors import NotFound
from secl.central.evidence.verify import Evidence, collect_evidence
from secl.central.reports import jobs
from secl.central.reports.judge import judge
from secl.central.reports.sign import StoredReport, insert_reports, remember_stored_manifest, sign_report
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_job_models import ReportJob
from secl.central.store.hvs_report_models import Report

log = logging.getLogger("secl.central.hvs")


def attest_host(session: Session, services: CentralServices, host: Host, *, actor: str) -> StoredReport:
    """Collect evidence from the host, judge it, sign and store the report (committed)."""
    return report_on(session, services, host, collect_evidence(session, services, host), actor=actor)


def report_on(
    session: Session, services: CentralServices, host: Host, evidence: Evidence, *, actor: str
) -> StoredReport:
    """Judge verified evidence from ``host``, then sign and store the report (committed).

    A report is not written to the audit log: its row is itself an append-only record of who asked
    (``created_by``), when and with what outcome, and an audit row beside it would double the writes of
    the busiest path (a fleet re-attested hourly) to say the same thing twice.
    """
    now = datetime.now(UTC).replace(microsecond=0)
    verdict = judge(session, services, host, evidence, now)
    row = sign_report(session, services, host, evidence, verdict, now=now, actor=actor)
    insert_reports(session, services.memos, [row])
    session.commit()
    remember_stored_manifest(services.memos, row)
    log.info("report %s for host %s: %s", row.id, host.name, "trusted" if verdict.trusted else "UNTRUSTED")
    return row


def search_reports(
    session: Session,
    *,
    report_id: str | None,
    host_id: str | None,
    host_name: str | None,
    hardware_uuid: str | None,
    latest_per_host: bool,
    limit: int,
) -> list[tuple[Report, Host]]:
    """Reports with their hosts, newest first; ``latest_per_host``: each host's newest only."""
    statement = select(Report, Host).join(Host, Host.id == Report.host_id)
    if report_id is not None:
        statement = statement.where(Report.id == report_id)
    if host_id is not None:
        statement = statement.where(Report.host_id == host_id)
    if host_name is not None:
        statement = statement.where(Host.name == host_name)
    if hardware_uuid is not None:
        statement = statement.where(Host.hardware_uuid == hardware_uuid)
    if latest_per_host:
        ranked = select(
            Report.id,
            func.row_number()
            .over(partition_by=Report.host_id, order_by=(Report.created_at.desc(), Report.id.desc()))
            .label("rank"),
        ).subquery()
        statement = statement.join(ranked, ranked.c.id == Report.id).where(ranked.c.rank == 1)
    statement = statement.order_by(Report.created_at.desc(), Report.id.desc()).limit(limit)
    return [(report, host) for report, host in session.execute(statement)]


def get_report(session: Session, report_id: str) -> tuple[Report, Host]:
    report = session.get(Report, report_id)
    if report is None:
        raise NotFound(f"no report {report_id}", code="report-not-found")
    host = session.get(Host, report.host_id)
    assert host is not None  # a report's host is a foreign key with ON DELETE CASCADE
    return report, host


def queue_hosts(session: Session, host_ids: Sequence[str] | None, *, actor: str) -> list[ReportJob]:
    """A report job per host (``None``: every registered host, by name); a host already queued or running
    keeps its job. An unknown host id is refused before anything is queued."""
    if host_ids is None:
        ids = list(session.scalars(select(Host.id).order_by(Host.name)))
    else:
        ids = list(dict.fromkeys(host_ids))
        known = set(session.scalars(select(Host.id).where(Host.id.in_(ids))))
        missing = [h for h in ids if h not in known]
        if missing:
            raise NotFound(f"no host {missing[0]}", code="host-not-found", details={"host_ids": missing})
    return jobs.enqueue(session, ids, actor=actor)
