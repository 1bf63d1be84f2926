"""The report job queue: enqueue hosts, claim jobs for a worker, record how they ended.

Every piece of queue state is a row of ``report_jobs`` (:mod:`secl.central.store.hvs_job_models`), so any
number of ``secl-central worker`` processes on any number of machines share one queue without talking to
each other:

- :func:`enqueue` adds a queued job per host; a host that already has an active (queued or running) job
  gets that job back instead (a partial unique index makes this hold even between racing callers).
- :func:`claim` hands a worker up to ``limit`` jobs. On PostgreSQL it selects them ``FOR UPDATE SKIP
  LOCKED`` in one transaction and marks them running, so concurrent workers skip each other's rows
  instead of waiting for them. On SQLite, which has no row locks, each candidate is taken by a
  conditional ``UPDATE … WHERE status = 'queued'`` whose row count says whether this worker won; SQLite
  has one writer at a time, so the condition is evaluated atomically. Either way a claim sets a lease
  (``lease_expires_at``) and a fresh ``claim_token``: a job whose worker died is claimable again once its
  lease has expired, and the dead worker's late :func:`complete` or :func:`fail` (wrong token) changes
  nothing.
- :func:`complete` marks a job done with its report; :func:`fail` either puts it back in the queue after
  an exponential backoff (a retryable failure, while attempts remain) or marks it failed with the error
  code. A job claimed again after its lease expired more than ``max_attempts`` times fails with
  ``lease-expired``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from secl.central.store.db import rowcount
from secl.central.store.hvs_job_models import ReportJob
from secl.central.store.hvs_report_models import Report

#: How long a claim holds before another worker may take the job (an attestation takes seconds).
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
#: Retry delays: BACKOFF_BASE, doubled per attempt, at most BACKOFF_MAX.
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(minutes=15)
ACTIVE_STATUSES = ("queued", "running")
#: Above this many hosts, enqueue reads every active job instead of an IN list of the hosts.
_IN_LIMIT = 500


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker knows of a job it holds; ``claim_token`` proves the claim is still its own."""

    id: str
    host_id: str
    reason: str
    attempts: int
    max_attempts: int
    claimed_by: str
    claim_token: str


class JobFailed(Exception):
    """A job ended by an expected failure: its ``code`` is recorded on the job, and it is queued again
    after a backoff when ``retryable`` (the agent may come back) and attempts remain."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code, self.message, self.retryable = code, message, retryable


def _now() -> datetime:
    return datetime.now(UTC)


def backoff(attempts: int) -> timedelta:
    """The delay before the next attempt after ``attempts`` failed ones."""
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


# --- enqueue ----------------------------------------------------------------------------------------------


def _active(session: Session, host_ids: Sequence[str]) -> dict[str, ReportJob]:
    statement = select(ReportJob).where(ReportJob.status.in_(ACTIVE_STATUSES))
    if len(host_ids) <= _IN_LIMIT:
        statement = statement.where(ReportJob.host_id.in_(list(host_ids)))
    wanted = set(host_ids)
    return {job.host_id: job for job in session.scalars(statement) if job.host_id in wanted}


def enqueue(
    session: Session,
    host_ids: Iterable[str],
    *,
    actor: str,
    reason: str = "requested",
    max_attempts: int = MAX_ATTEMPTS,
) -> list[ReportJob]:
    """One active job per host, in the order given (duplicates once): the existing one, or a new queued
    one. Commits. The hosts must exist (a foreign key)."""
    ids = list(dict.fromkeys(host_ids))
    for attempt in range(3):
        try:
            active = _active(session, ids)
            now = _now()
            added = {
                host_id: ReportJob(
                    id=str(uuid.uuid4()),
                    host_id=host_id,
                    status="queued",
                    reason=reason,
                    attempts=0,
                    max_attempts=max_attempts,
                    available_at=now,
                    created_at=now,
                    created_by=actor,
                    reused=False,
                    result={},
                )
                for host_id in ids
                if host_id not in active
            }
            session.add_all(added.values())
            session.commit()
            return [active.get(host_id) or added[host_id] for host_id in ids]
        except IntegrityError:  # another caller queued one of these hosts meanwhile: read it back
            session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def hosts_to_refresh(
    session: Session, *, margin: timedelta, cooldown: timedelta, now: datetime | None = None
) -> list[str]:
    """Hosts whose newest report expires within ``margin`` and that have neither an active job nor one
    created within ``cooldown`` (so a host that keeps failing is retried at that pace, not every poll)."""
    now = now or _now()
    expiring = (
        select(Report.host_id).group_by(Report.host_id).having(func.max(Report.expires_at) <= now + margin)
    )
    busy = select(ReportJob.host_id).where(
        or_(ReportJob.status.in_(ACTIVE_STATUSES), ReportJob.created_at >= now - cooldown)
    )
    return list(session.scalars(expiring.where(Report.host_id.not_in(busy)).order_by(Report.host_id)))


# --- claim ------------------------------------------------------------------------------------------------


def _claimable(now: datetime) -> Any:
    return or_(
        and_(ReportJob.status == "queued", ReportJob.available_at <= now),
        and_(ReportJob.status == "running", ReportJob.lease_expires_at < now),
    )


def _claim_values(worker: str, token: str, now: datetime, lease: timedelta) -> dict[str, Any]:
    return {
        "status": "running",
        "attempts": ReportJob.attempts + 1,
        "claimed_by": worker,
        "claim_token": token,
        "claimed_at": now,
        "lease_expires_at": now + lease,
    }


def claim(
    session: Session, worker: str, *, limit: int, lease: timedelta = LEASE, now: datetime | None = None
) -> list[ClaimedJob]:
    """Claim up to ``limit`` jobs for ``worker`` (oldest first) and commit; see the module docstring."""
    now = now or _now()
    session.rollback()  # start from a clean transaction: the claim must be its own
    order = (ReportJob.available_at, ReportJob.id)
    tokens: dict[str, str] = {}
    if session.get_bind().dialect.name == "postgresql":
        ids = list(
            session.scalars(
                select(ReportJob.id)
                .where(_claimable(now))
                .order_by(*order)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for job_id in ids:
            tokens[job_id] = str(uuid.uuid4())
            session.execute(
                update(ReportJob)
                .where(ReportJob.id == job_id)
                .values(**_claim_values(worker, tokens[job_id], now, lease))
            )
        session.commit()
    else:
        candidates = list(
            session.scalars(select(ReportJob.id).where(_claimable(now)).order_by(*order).limit(limit * 2))
        )
        session.rollback()
        for job_id in candidates:
            if len(tokens) == limit:
                break
            token = str(uuid.uuid4())
            won = rowcount(
                session.execute(
                    update(ReportJob)
                    .where(ReportJob.id == job_id, _claimable(now))
                    .values(**_claim_values(worker, token, now, lease))
                )
            )
            session.commit()
            if won == 1:
                tokens[job_id] = token
    if not tokens:
        return []
    rows = session.scalars(select(ReportJob).where(ReportJob.id.in_(list(tokens))).order_by(*order)).all()
    claimed: list[ClaimedJob] = []
    for row in rows:
        job = ClaimedJob(
            row.id, row.host_id, row.reason, row.attempts, row.max_attempts, worker, tokens[row.id]
        )
        if job.attempts > job.max_attempts:  # only a lease that expired again and again gets here
            fail(
                session,
                job,
                "lease-expired",
                "the job's workers kept dying before finishing it",
                retryable=False,
            )
            continue
        claimed.append(job)
    session.commit()
    return claimed


# --- outcome ----------------------------------------------------------------------------------------------


def _mine(job: ClaimedJob) -> Any:
    return and_(
        ReportJob.id == job.id, ReportJob.claim_token == job.claim_token, ReportJob.status == "running"
    )


def complete(
    session: Session,
    job: ClaimedJob,
    *,
    report_id: str | None = None,
    reused: bool = False,
    basis_digest: str | None = None,
    result: dict[str, Any] | None = None,
) -> bool:
    """Mark the job done; False when the claim was lost (lease expired and another worker took it)."""
    done = _mark_done(
        session,
        job,
        report_id=report_id,
        reused=reused,
        basis_digest=basis_digest,
        result=result or {},
        now=_now(),
    )
    session.commit()
    return done


def complete_many(session: Session, done: Sequence[tuple[ClaimedJob, dict[str, Any]]]) -> list[bool]:
    """Mark each job done with its result (``report_id``, ``reused`` and ``basis_digest`` taken from it),
    in one transaction: a worker's batch. Per job, False when its claim was lost."""
    now = _now()
    marked = [
        _mark_done(
            session,
            job,
            report_id=result.get("report_id"),
            reused=bool(result.get("reused")),
            basis_digest=result.get("basis_digest"),
            result=result,
            now=now,
        )
        for job, result in done
    ]
    session.commit()
    return marked


def _mark_done(
    session: Session,
    job: ClaimedJob,
    *,
    report_id: str | None,
    reused: bool,
    basis_digest: str | None,
    result: dict[str, Any],
    now: datetime,
) -> bool:
    values = {
        "status": "done",
        "finished_at": now,
        "report_id": report_id,
        "reused": reused,
        "basis_digest": basis_digest,
        "result": result,
        "error_code": None,
        "error_message": None,
        "lease_expires_at": None,
    }
    return rowcount(session.execute(update(ReportJob).where(_mine(job)).values(**values))) == 1


def fail(session: Session, job: ClaimedJob, code: str, message: str, *, retryable: bool) -> str | None:
    """Record a failure: back to ``queued`` after :func:`backoff` when retryable and attempts remain,
    else ``failed``. Returns the new status, or None when the claim was lost."""
    now = _now()
    values: dict[str, Any] = {
        "error_code": code[:64],
        "error_message": message[:4000],
        "lease_expires_at": None,
    }
    if retryable and job.attempts < job.max_attempts:
        values |= {"status": "queued", "available_at": now + backoff(job.attempts), "claim_token": None}
    else:
        values |= {"status": "failed", "finished_at": now}
    changed = rowcount(session.execute(update(ReportJob).where(_mine(job)).values(**values)))
    session.commit()
    return values["status"] if changed == 1 else None


def renew(
    session: Session, claimed: list[ClaimedJob], lease: timedelta = LEASE, *, now: datetime | None = None
) -> int:
    """Extend the lease of claimed jobs still ours (a worker about to start the next job of its batch, so
    a long batch is not taken over by another worker); returns how many were renewed."""
    if not claimed:
        return 0
    until = (now or _now()) + lease
    renewed = 0
    for job in claimed:
        renewed += rowcount(
            session.execute(update(ReportJob).where(_mine(job)).values(lease_expires_at=until))
        )
    session.commit()
    return renewed


def release(session: Session, job: ClaimedJob) -> bool:
    """Give a claimed, unstarted job back to the queue (a worker stopping); the attempt does not count."""
    released = rowcount(
        session.execute(
            update(ReportJob)
            .where(_mine(job))
            .values(
                status="queued",
                attempts=ReportJob.attempts - 1,
                claim_token=None,
                claimed_by=None,
                claimed_at=None,
                lease_expires_at=None,
            )
        )
    )
    session.commit()
    return released == 1


def search(
    session: Session, *, status: str | None = None, host_id: str | None = None, limit: int = 100
) -> list[ReportJob]:
    """Jobs, newest first."""
    statement = select(ReportJob)
    if status is not None:
        statement = statement.where(ReportJob.status == status)
    if host_id is not None:
        statement = statement.where(ReportJob.host_id == host_id)
    return list(session.scalars(statement.order_by(ReportJob.created_at.desc(), ReportJob.id).limit(limit)))
