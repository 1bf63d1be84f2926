"""The report queue's default job: attest the job's host and store its report, re-using the host's newest
report when neither its evidence nor what the report depends on changed.

Fresh evidence comes from the host's trust agent (:func:`secl.central.evidence.fetch.fetch_evidence`,
checked by :func:`~secl.central.evidence.verify.accept_evidence`); then either a new trust report, or, when
the evidence digest (quoted PCR digest + event log) and the basis (:func:`secl.central.reports.basis.
basis_digest`) are those of the host's newest report, a copy of that report's trust report with a new
validity window and a freshly signed attestation-result JWT (the job's result says ``reused: true``). Rules
are not evaluated again for unchanged evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from secl.central.context import CentralServices
from secl.central.errors import ServiceError
from secl.central.evidence.agentclient import AgentError
from secl.central.evidence.fetch import FetchedEvidence, fetch_evidence
from secl.central.evidence.verify import AgentFailed, Evidence, accept_evidence, agent_failed
from secl.central.hosts.service import find_host, find_hosts
from secl.central.reports.basis import basis_digest
from secl.central.reports.hostpolicy import HostPolicy, load_host_policies
from secl.central.reports.jobs import ClaimedJob, JobFailed
from secl.central.reports.judge import Verdict, judge, tag_basis
from secl.central.reports.sign import StoredReport, insert_reports, remember_stored_manifest, sign_report
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_job_models import ReportJob
from secl.central.store.hvs_report_models import Report

log = logging.getLogger("secl.central.hvs.worker")

# The host's newest report and the basis digest of the job that made it (built once; an index on each
# side, so the read does not grow with the host's history).
_NEWEST_REPORT = (
    select(Report.id, Report.evidence_digest, ReportJob.basis_digest)
    .outerjoin(ReportJob, and_(ReportJob.report_id == Report.id, ReportJob.status == "done"))
    .where(Report.host_id == bindparam("host_id"))
    .order_by(Report.created_at.desc(), Report.id.desc())
    .limit(1)
)


@dataclass(frozen=True)
class Fetched:
    """A job whose host's agent answered: its evidence, not yet checked."""

    job: ClaimedJob
    evidence: FetchedEvidence


@dataclass
class _Attesting:
    index: int
    job: ClaimedJob
    host: Host
    evidence: Evidence
    verdict: Verdict | None = None
    basis: str | None = None
    previous: Report | None = None


class ReportProcessor:
    """Attest the job's host and store its report, re-using the newest one for unchanged evidence.

    Two steps, so a worker can run a batch the fast way: :meth:`fetch` asks one host's agent (network,
    run concurrently on the worker's lanes), :meth:`attest` judges a batch of fetched evidence in one
    session, each step over the whole batch in turn (verify every quote, then judge every host, then sign
    and store every report) and one commit for all of it. Keeping one kind of work together is what makes
    a batch fast: a report touches a great deal of code (JSON, SQL, the rules, the signatures), and taken
    one at a time each step finds the processor's caches filled by the others (batches of 10 make ~1.7x
    the reports per second of one at a time, bench/attestation.py). Called with one job, it does both
    steps for that job.

    ``reuse=False`` judges every report in full, as the bench does to count the rules' cost.
    """

    def __init__(
        self, services: CentralServices, *, actor: str = "secl-central worker", reuse: bool = True
    ) -> None:
        self.services = services
        self.database = services.database
        self.actor = actor
        self.reuse = reuse

    def __call__(self, job: ClaimedJob) -> dict[str, Any]:
        (outcome,) = self.attest([self.fetch(job)])
        if isinstance(outcome, JobFailed):
            raise outcome
        return outcome

    def fetch(self, job: ClaimedJob) -> Fetched:
        """Ask the job's host's agent for evidence; JobFailed (retryable) when it cannot be asked."""
        with self.database.sessions() as session:
            host = find_host(session, job.host_id)
            if host is None:
                raise JobFailed("host-not-found", f"no host {job.host_id}", retryable=False)
            try:
                return Fetched(job, fetch_evidence(self.services.files, host))
            except AgentError as exc:  # the agent may come back: retry later
                failed = agent_failed(session, host, exc)
                raise JobFailed(failed.code, failed.message, retryable=True) from None

    def attest(self, batch: Sequence[Fetched]) -> list[dict[str, Any] | JobFailed]:
        """Judge each fetched job and store its report, in one transaction; per job, its result (as for
        :meth:`__call__`) or the JobFailed that ended it. Should the commit fail (a host deleted meanwhile),
        each report is stored again on its own, so one bad job does not fail the others."""
        outcomes: list[dict[str, Any] | JobFailed] = [
            JobFailed("internal-error", "not attested", retryable=True) for _ in batch
        ]
        memos = self.services.memos
        with self.database.sessions() as session:
            hosts = find_hosts(session, [f.job.host_id for f in batch])
            now = datetime.now(UTC).replace(microsecond=0)
            attesting: list[_Attesting] = []
            for index, fetched in enumerate(batch):  # every quote verified, every manifest built
                try:
                    host = hosts.get(fetched.job.host_id)
                    if host is None:
                        raise JobFailed("host-not-found", f"no host {fetched.job.host_id}", retryable=False)
                    evidence = accept_evidence(session, memos.evidence, host, fetched.evidence)
                    attesting.append(_Attesting(index, fetched.job, host, evidence))
                except Exception as exc:  # each job's failure is its own
                    outcomes[index] = self._failure(session, fetched.job, exc)
            # Every host's groups and flavors, in one statement for the batch.
            policies = load_host_policies(session, self.services, [item.host for item in attesting])
            judged: list[_Attesting] = []
            for item in attesting:  # every host judged (or its previous report re-used)
                try:
                    self._judge(session, item, policies[item.host.id], now)
                    judged.append(item)
                except Exception as exc:
                    outcomes[item.index] = self._failure(session, item.job, exc)
            rows: list[StoredReport | None]
            try:
                signed = [self._sign(session, item, now) for item in judged]  # every report signed
                insert_reports(session, memos, signed)
                session.commit()
                rows = list(signed)
            except Exception:  # retried one by one below, each failure on its own job
                session.rollback()
                rows = self._store_one_by_one(session, judged, now, outcomes)
            for item, row in zip(judged, rows, strict=True):
                if row is not None:
                    outcomes[item.index] = self._stored(item, row)
        return outcomes

    def _judge(self, session: Session, item: _Attesting, policy: HostPolicy, now: datetime) -> None:
        services = self.services
        if self.reuse:
            tags = tag_basis(session, services, item.host, item.evidence, now)
            item.basis = basis_digest(services, item.host, item.evidence, policy=policy, tags=tags, at=now)
            item.previous = self._reusable(session, item.host, item.evidence.digest, item.basis)
        if item.previous is not None:
            p = item.previous
            item.verdict = Verdict(p.trusted, p.trust_report, p.flavors_trust, p.tags)
        else:
            item.verdict = judge(session, services, item.host, item.evidence, now, policy=policy)

    def _sign(self, session: Session, item: _Attesting, now: datetime) -> StoredReport:
        assert item.verdict is not None
        return sign_report(
            session, self.services, item.host, item.evidence, item.verdict, now=now, actor=self.actor
        )

    def _store_one_by_one(
        self,
        session: Session,
        judged: list[_Attesting],
        now: datetime,
        outcomes: list[dict[str, Any] | JobFailed],
    ) -> list[StoredReport | None]:
        rows: list[StoredReport | None] = []
        for item in judged:
            try:
                row = self._sign(session, item, now)
                insert_reports(session, self.services.memos, [row])
                session.commit()
                rows.append(row)
            except Exception as exc:
                session.rollback()
                log.exception(
                    "job %s (host %s): the report could not be stored", item.job.id, item.job.host_id
                )
                outcomes[item.index] = JobFailed(
                    "internal-error", f"{type(exc).__name__}: {exc}", retryable=True
                )
                rows.append(None)
        return rows

    def _stored(self, item: _Attesting, row: StoredReport) -> dict[str, Any]:
        remember_stored_manifest(self.services.memos, row)
        previous = item.previous
        log.info(
            "report %s for host %s: %s%s",
            row.id,
            item.host.name,
            "trusted" if row.trusted else "UNTRUSTED",
            f" (re-used {previous.id})" if previous else "",
        )
        return {
            "report_id": row.id,
            "trusted": row.trusted,
            "reused": previous is not None,
            "basis_digest": item.basis,
            "evidence_digest": item.evidence.digest,
            "reused_report_id": previous.id if previous else None,
        }

    @staticmethod
    def _failure(session: Session, job: ClaimedJob, exc: Exception) -> JobFailed:
        if isinstance(exc, JobFailed):
            return exc
        if isinstance(exc, AgentFailed):  # the agent may come back: retry later
            return JobFailed(exc.code, exc.message, retryable=True)
        if isinstance(
            exc, ServiceError
        ):  # evidence-invalid, flavor-signature-invalid: retrying will not help
            detail = f" ({exc.details})" if exc.details else ""
            return JobFailed(exc.code, f"{exc.message}{detail}", retryable=False)
        log.exception("job %s (host %s) failed", job.id, job.host_id)
        # A database error may have left the transaction unusable (PostgreSQL aborts it): start afresh
        # for the rest of the batch. Nothing of the batch is pending yet (host status changes commit).
        session.rollback()
        return JobFailed("internal-error", f"{type(exc).__name__}: {exc}", retryable=True)

    def _reusable(self, session: Session, host: Host, evidence_digest: str, basis: str) -> Report | None:
        """The host's newest report when it was made (by a job) from this evidence on this basis."""
        newest = session.connection().execute(_NEWEST_REPORT, {"host_id": host.id}).first()
        if newest is None or (newest.evidence_digest, newest.basis_digest) != (evidence_digest, basis):
            return None
        return session.get(Report, newest.id)
