"""``secl-central worker``: attest hosts from the report job queue, and keep their reports fresh.

A :class:`Worker` loops: every ``refresh_every`` seconds a refresh pass queues the hosts whose newest
report expires within ``refresh_margin``; then it claims a batch of jobs (:func:`secl.central.hvs.jobs.claim`)
and runs ``process(job)`` for each, recording the outcome (done with the report, or failed with an error
code, retried with backoff when the failure may pass). With the default process the batch's agents are
asked concurrently and the batch is then judged and stored in one transaction
(:meth:`ReportProcessor.attest`). :meth:`Worker.stop` (the CLI wires SIGTERM and SIGINT to it) lets the
jobs in progress finish, gives the rest of the batch back to the queue and ends the loop.
All state is on the instance: two workers in one process (the tests) share nothing but the database.

The default ``process`` is :class:`ReportProcessor`: fresh evidence from the host's trust agent
(:func:`secl.central.hvs.verifier.fetch_evidence`, checked by ``accept_evidence``), then either a new trust report, or, when the evidence
digest (quoted PCR digest + event log) and everything else the report depends on (:func:`basis_digest`:
the host's flavor groups and their policies, the flavors with their signatures, the trust anchors, the
AIK certificate and whether it is trusted now, the host info, the reported asset tag and the state of the
host's tag certificates) are those of the host's newest report, a copy of that report's trust report
with a new validity window and a freshly signed attestation-result JWT (the job's result says
``reused: true``). Rules are not evaluated again for unchanged evidence.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from cryptography.hazmat.primitives import hashes
from flask import Flask
from secl.central.errors import APIError
from secl.central.hvs import flavorstore, jobs, verifier
from secl.central.hvs.agentclient import AgentError
from secl.central.hvs.hostpolicy import HostPolicy, load_host_policies
from secl.central.hvs.hoststore import find_host, find_hosts
from secl.central.hvs.jobs import ClaimedJob
from secl.central.hvs.privacyca import privacy_ca
from secl.central.store.db import Database
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_job_models import ReportJob
from secl.central.store.hvs_report_models import Report
from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from secl.core.attestation import certificate_sha384
from secl.sdnotify import notify

log = logging.getLogger("secl.central.hvs.worker")
_T = TypeVar("_T")

POLL_INTERVAL = 5.0  # seconds between claims when the queue was empty
BATCH_SIZE = 10
REFRESH_MARGIN = timedelta(hours=1)  # refresh reports expiring within this
REFRESH_COOLDOWN = timedelta(minutes=15)  # a host is not queued by the refresh pass more often
REFRESH_EVERY = 60.0  # seconds between refresh passes of one worker

#: ``process(job) -> result``: the result's ``report_id``, ``reused`` and ``basis_digest`` are recorded
#: on the job, the whole dict as its result. Raise :class:`JobFailed` for an expected failure.
Process = Callable[[ClaimedJob], dict[str, Any]]


class JobFailed(Exception):
    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code, self.message, self.retryable = code, message, retryable


# --- what a report depends on ----------------------------------------------------------------------------

# The host's newest report and the basis digest of the job that made it (built once; an index on each
# side, so the read does not grow with the host's history).
_NEWEST_REPORT = (
    select(Report.id, Report.evidence_digest, ReportJob.basis_digest)
    .outerjoin(ReportJob, and_(ReportJob.report_id == Report.id, ReportJob.status == "done"))
    .where(Report.host_id == bindparam("host_id"))
    .order_by(Report.created_at.desc(), Report.id.desc())
    .limit(1)
)


def _fingerprint(cert: Any) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def basis_digest(
    app: Flask,
    host: Host,
    evidence: verifier.Evidence,
    *,
    policy: HostPolicy,
    tags: dict[str, Any],
    at: datetime,
) -> str:
    """SHA-256 over what the host's trust report depends on besides the evidence digest: its groups and
    flavors (``policy``), the trust anchors, the AIK, the host and the asset-tag state (``tags``, from
    :func:`verifier.tag_basis`). Over-inclusive on purpose: a change here only costs a full evaluation."""
    groups = policy.groups
    flavors = {f for g in groups for f in g.flavors}
    signer = flavorstore.flavor_signer(app)
    aik = evidence.built.manifest.aik_certificate
    basis = {
        "groups": [[g.id, g.name, [p.model_dump(mode="json") for p in g.match_policies]] for g in groups],
        "flavors": sorted(
            {
                (f.id, hashlib.sha256(f.document.encode()).hexdigest(), f.signature, f.signature_scheme)
                for f in flavors
            }
        ),
        "anchors": [_fingerprint(privacy_ca(app).issuer.certificate), *map(_fingerprint, signer.chain)],
        "flavor_signer_valid": signer.certificate.not_valid_before_utc
        <= at
        <= signer.certificate.not_valid_after_utc,
        "aik": certificate_sha384(aik) if aik else None,
        "aik_trusted": verifier.aik_trusted(app, evidence, at),
        "host": [host.name, host.hardware_uuid],
        "host_info": evidence.host_info,
        # The reported tag, the Tag CA, and revocation and expiry of the host's tag certificates.
        "asset_tag": tags,
    }
    return hashlib.sha256(
        orjson.dumps(basis, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    ).hexdigest()


# --- the default process: attest the host -----------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """A job whose host's agent answered: its evidence, not yet checked."""

    job: ClaimedJob
    evidence: verifier.FetchedEvidence


@dataclass
class _Attesting:
    index: int
    job: ClaimedJob
    host: Host
    evidence: verifier.Evidence
    verdict: verifier.Verdict | None = None
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

    def __init__(self, app: Flask, *, actor: str = "secl-central worker", reuse: bool = True) -> None:
        self.app = app
        self.database: Database = app.extensions["secl.db"]
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
                return Fetched(job, verifier.fetch_evidence(self.app, host))
            except AgentError as exc:  # the agent may come back: retry later
                failed = verifier.agent_failed(session, host, exc)
                raise JobFailed(failed.code, failed.message, retryable=True) from None

    def attest(self, batch: Sequence[Fetched]) -> list[dict[str, Any] | JobFailed]:
        """Judge each fetched job and store its report, in one transaction; per job, its result (as for
        :meth:`__call__`) or the JobFailed that ended it. Should the commit fail (a host deleted meanwhile),
        each report is stored again on its own, so one bad job does not fail the others."""
        outcomes: list[dict[str, Any] | JobFailed] = [
            JobFailed("internal-error", "not attested", retryable=True) for _ in batch
        ]
        with self.database.sessions() as session:
            hosts = find_hosts(session, [f.job.host_id for f in batch])
            now = datetime.now(UTC).replace(microsecond=0)
            attesting: list[_Attesting] = []
            for index, fetched in enumerate(batch):  # every quote verified, every manifest built
                try:
                    host = hosts.get(fetched.job.host_id)
                    if host is None:
                        raise JobFailed("host-not-found", f"no host {fetched.job.host_id}", retryable=False)
                    evidence = verifier.accept_evidence(session, self.app, host, fetched.evidence)
                    attesting.append(_Attesting(index, fetched.job, host, evidence))
                except Exception as exc:  # each job's failure is its own
                    outcomes[index] = self._failure(session, fetched.job, exc)
            # Every host's groups and flavors, in one statement for the batch.
            policies = load_host_policies(session, self.app, [item.host for item in attesting])
            judged: list[_Attesting] = []
            for item in attesting:  # every host judged (or its previous report re-used)
                try:
                    self._judge(session, item, policies[item.host.id], now)
                    judged.append(item)
                except Exception as exc:
                    outcomes[item.index] = self._failure(session, item.job, exc)
            try:
                rows = [self._sign(session, item, now) for item in judged]  # every report signed
                verifier.insert_reports(session, self.app, rows)
                session.commit()
            except Exception:  # retried one by one below, each failure on its own job
                session.rollback()
                rows = self._store_one_by_one(session, judged, now, outcomes)
            for item, row in zip(judged, rows, strict=True):
                if row is not None:
                    outcomes[item.index] = self._stored(item, row)
        return outcomes

    def _judge(self, session: Session, item: _Attesting, policy: HostPolicy, now: datetime) -> None:
        if self.reuse:
            tags = verifier.tag_basis(session, self.app, item.host, item.evidence, now)
            item.basis = basis_digest(self.app, item.host, item.evidence, policy=policy, tags=tags, at=now)
            item.previous = self._reusable(session, item.host, item.evidence.digest, item.basis)
        if item.previous is not None:
            p = item.previous
            item.verdict = verifier.Verdict(p.trusted, p.trust_report, p.flavors_trust, p.tags)
        else:
            item.verdict = verifier.judge(session, self.app, item.host, item.evidence, now, policy=policy)

    def _sign(self, session: Session, item: _Attesting, now: datetime) -> verifier.StoredReport:
        assert item.verdict is not None
        return verifier.sign_report(
            session, self.app, item.host, item.evidence, item.verdict, now=now, actor=self.actor
        )

    def _store_one_by_one(
        self,
        session: Session,
        judged: list[_Attesting],
        now: datetime,
        outcomes: list[dict[str, Any] | JobFailed],
    ) -> list[verifier.StoredReport | None]:
        rows: list[verifier.StoredReport | None] = []
        for item in judged:
            try:
                row = self._sign(session, item, now)
                verifier.insert_reports(session, self.app, [row])
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

    def _stored(self, item: _Attesting, row: verifier.StoredReport) -> dict[str, Any]:
        verifier.remember_stored_manifest(self.app, row)
        previous = item.previous
        log.info("report %s for host %s: %s%s", row.id, item.host.name, "trusted" if row.trusted else "UNTRUSTED",
                 f" (re-used {previous.id})" if previous else "")  # fmt: skip
        return {
            "report_id": row.id, "trusted": row.trusted, "reused": previous is not None,
            "basis_digest": item.basis, "evidence_digest": item.evidence.digest,
            "reused_report_id": previous.id if previous else None,
        }  # fmt: skip

    @staticmethod
    def _failure(session: Session, job: ClaimedJob, exc: Exception) -> JobFailed:
        if isinstance(exc, JobFailed):
            return exc
        if isinstance(exc, verifier.AgentFailed):  # the agent may come back: retry later
            return JobFailed(exc.code, exc.message, retryable=True)
        if isinstance(exc, APIError):  # evidence-invalid, flavor-signature-invalid: retrying will not help
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


# --- the loop ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    job_id: str
    status: str  # done | queued (retry) | failed | lost (another worker holds the claim now)
    result: dict[str, Any]
    error_code: str | None = None


class Worker:
    def __init__(
        self,
        app: Flask,
        *,
        name: str | None = None,
        process: Process | None = None,
        batch_size: int = BATCH_SIZE,
        lease: timedelta = jobs.LEASE,
        poll_interval: float = POLL_INTERVAL,
        refresh: bool = True,
        refresh_margin: timedelta = REFRESH_MARGIN,
        refresh_cooldown: timedelta = REFRESH_COOLDOWN,
        refresh_every: float = REFRESH_EVERY,
        concurrency: int = 1,
    ) -> None:
        self.app = app
        self.database: Database = app.extensions["secl.db"]
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.process: Process = process or ReportProcessor(app, actor=f"worker {self.name}"[:255])
        self.batch_size, self.lease, self.poll_interval = batch_size, lease, poll_interval
        self.refresh, self.refresh_margin, self.refresh_cooldown = refresh, refresh_margin, refresh_cooldown
        self.refresh_every = refresh_every
        # Jobs of one batch run at once: each waits mostly on its agent (TLS, the TPM's quote).
        self.concurrency = concurrency
        self.stopping = threading.Event()
        self._last_refresh: float | None = None

    def stop(self) -> None:
        """Finish the jobs in progress (with the default process: judge and store those already fetched),
        give the rest of the batch back, and leave :meth:`run`."""
        self.stopping.set()

    def refresh_pass(self) -> list[ReportJob]:
        """Queue the hosts whose newest report expires within the margin."""
        with self.database.sessions() as session:
            hosts = jobs.hosts_to_refresh(session, margin=self.refresh_margin, cooldown=self.refresh_cooldown)
            queued = (
                jobs.enqueue(session, hosts, actor=f"worker {self.name}"[:255], reason="refresh")
                if hosts
                else []
            )
        self._last_refresh = time.monotonic()
        if queued:
            log.info("refresh: queued %d host(s) whose report expires soon", len(queued))
        return queued

    def run_once(self) -> list[Outcome]:
        """One iteration: the refresh pass when due, then claim and process one batch."""
        if self.refresh and (
            self._last_refresh is None or time.monotonic() - self._last_refresh >= self.refresh_every
        ):
            self.refresh_pass()
        with self.database.sessions() as session:
            claimed = jobs.claim(session, self.name, limit=self.batch_size, lease=self.lease)
        return self._process_batch(claimed)

    def _process_batch(self, claimed: list[ClaimedJob]) -> list[Outcome]:
        """Run the claimed jobs on ``concurrency`` threads (an agent's answer takes most of a job's time,
        waiting on the network); give back the ones not started when :meth:`stop` is called. With the
        default :class:`ReportProcessor` the threads only fetch the evidence, and the batch is judged and
        stored at once (:meth:`ReportProcessor.attest`)."""
        batched = isinstance(self.process, ReportProcessor)
        pending = list(enumerate(claimed))
        lanes = max(1, min(self.concurrency, len(claimed)))
        lock = threading.Lock()
        done: list[tuple[int, Outcome]] = []
        fetched: list[tuple[int, Fetched]] = []

        def next_job() -> tuple[int, ClaimedJob] | None:
            with lock:
                if not pending or self.stopping.is_set():
                    return None
                index, job = pending.pop(0)
                waiting = [job, *(j for _, j in pending)]
            if index >= lanes:  # the first wave's leases are fresh; later jobs would age past theirs
                with self.database.sessions() as session:
                    jobs.renew(session, waiting, self.lease)
            return index, job

        def lane() -> None:
            while (item := next_job()) is not None:
                index, job = item
                if not batched:
                    outcome = self._run(job)
                else:
                    got = self._attempt(job, self.process.fetch)  # type: ignore[attr-defined]
                    if not isinstance(got, JobFailed):
                        with lock:
                            fetched.append((index, got))
                        continue
                    (outcome,) = self._record([(job, got)])
                with lock:
                    done.append((index, outcome))

        if lanes == 1:
            lane()
        else:
            threads = [threading.Thread(target=lane, name=f"{self.name}-lane{n}") for n in range(lanes)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if fetched:
            fetched.sort(key=lambda f: f[0])
            batch = [f for _, f in fetched]
            outcomes = self._record(
                [(f.job, result) for f, result in zip(batch, self._attest(batch), strict=True)]
            )
            done += [(index, outcome) for (index, _), outcome in zip(fetched, outcomes, strict=True)]
        if pending:  # stopped: these never started
            with self.database.sessions() as session:
                for _, unstarted in pending:
                    jobs.release(session, unstarted)
        return [outcome for _, outcome in sorted(done, key=lambda d: d[0])]

    def run(self) -> None:
        """Loop until :meth:`stop`."""
        log.info("worker %s started", self.name)
        notify(f"READY=1\nSTATUS=worker {self.name} polling the report queue")
        while not self.stopping.is_set():
            try:
                outcomes = self.run_once()
            except Exception:  # the database went away for a moment: log, wait, try again
                log.exception("worker %s: iteration failed", self.name)
                outcomes = []
            if not outcomes:
                self.stopping.wait(self.poll_interval)
        notify("STOPPING=1")
        log.info("worker %s stopped", self.name)

    def _run(self, job: ClaimedJob) -> Outcome:
        (outcome,) = self._record([(job, self._attempt(job, self.process))])
        return outcome

    def _attempt(self, job: ClaimedJob, step: Callable[[ClaimedJob], _T]) -> _T | JobFailed:
        """``step(job)``, or the JobFailed that ended it."""
        try:
            return step(job)
        except JobFailed as exc:
            return exc
        except Exception as exc:  # a bug or a database error: logged, retried like a transient failure
            log.exception("job %s (host %s) failed", job.id, job.host_id)
            return JobFailed("internal-error", f"{type(exc).__name__}: {exc}", retryable=True)

    def _attest(self, batch: list[Fetched]) -> list[dict[str, Any] | JobFailed]:
        try:
            return self.process.attest(batch)  # type: ignore[attr-defined,no-any-return]
        except Exception as exc:  # the database went away mid-batch: every job of it is retried
            log.exception("batch of %d job(s) failed", len(batch))
            return [JobFailed("internal-error", f"{type(exc).__name__}: {exc}", retryable=True)] * len(batch)

    def _record(self, results: list[tuple[ClaimedJob, dict[str, Any] | JobFailed]]) -> list[Outcome]:
        """Record each job's result on it: failures one by one, the jobs done in one transaction."""
        outcomes: dict[int, Outcome] = {}
        succeeded = []
        for k, (job, result) in enumerate(results):
            if isinstance(result, JobFailed):
                outcomes[k] = self._failed(job, result.code, result.message, retryable=result.retryable)
            else:
                succeeded.append((k, job, result))
        if succeeded:
            with self.database.sessions() as session:
                marked = jobs.complete_many(session, [(job, result) for _, job, result in succeeded])
            for (k, job, result), ok in zip(succeeded, marked, strict=True):
                outcomes[k] = Outcome(job.id, "done" if ok else "lost", result)
        return [outcomes[k] for k in range(len(results))]

    def _failed(self, job: ClaimedJob, code: str, message: str, *, retryable: bool) -> Outcome:
        log.warning("job %s (host %s) attempt %d: %s: %s", job.id, job.host_id, job.attempts, code, message)
        with self.database.sessions() as session:
            status = jobs.fail(session, job, code, message, retryable=retryable)
        return Outcome(job.id, status or "lost", {}, code)
