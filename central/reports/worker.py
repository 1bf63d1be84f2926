"""``secl-central worker``: attest hosts from the report job queue, and keep their reports fresh.

A :class:`Worker` loops: every ``refresh_every`` seconds a refresh pass queues the hosts whose newest
report expires within ``refresh_margin``; then it claims a batch of jobs (:func:`secl.central.reports.jobs.
claim`) and runs ``process(job)`` for each, recording the outcome (done with the report, or failed with an
error code, retried with backoff when the failure may pass). With the default process
(:class:`~secl.central.reports.processor.ReportProcessor`) the batch's agents are asked concurrently and the
batch is then judged and stored in one transaction. :meth:`Worker.stop` (the CLI wires SIGTERM and SIGINT to
it) lets the jobs in progress finish, gives the rest of the batch back to the queue and ends the loop. All
state is on the instance: two workers in one process (the tests) share nothing but the database.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from secl.central.context import CentralServices
from secl.central.reports import jobs
from secl.central.reports.jobs import ClaimedJob, JobFailed
from secl.central.reports.processor import Fetched, ReportProcessor
from secl.central.store.db import Database
from secl.central.store.hvs_job_models import ReportJob
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


@dataclass(frozen=True)
class Outcome:
    job_id: str
    status: str  # done | queued (retry) | failed | lost (another worker holds the claim now)
    result: dict[str, Any]
    error_code: str | None = None


class Worker:
    def __init__(
        self,
        services: CentralServices,
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
        self.services = services
        self.database: Database = services.database
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.process: Process = process or ReportProcessor(services, actor=f"worker {self.name}"[:255])
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
        processor = self.process if isinstance(self.process, ReportProcessor) else None
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
                if processor is None:
                    outcome = self._run(job)
                else:
                    got = self._attempt(job, processor.fetch)
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
        if fetched and processor is not None:
            fetched.sort(key=lambda f: f[0])
            batch = [f for _, f in fetched]
            outcomes = self._record(
                [(f.job, result) for f, result in zip(batch, self._attest(processor, batch), strict=True)]
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

    def _attest(self, processor: ReportProcessor, batch: list[Fetched]) -> list[dict[str, Any] | JobFailed]:
        try:
            return processor.attest(batch)
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
