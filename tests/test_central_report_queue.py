"""The asynchronous side of reports: the job queue, `secl-central worker`, refresh, and re-use.

- Two workers (threads, each with its own app and engine) on one database drain 20 queued jobs: each job
  is processed exactly once (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED; SQLite: conditional UPDATE),
  and on PostgreSQL a row locked by another transaction is skipped, not waited for.
- A claim whose lease expired (a crashed worker) is claimed again; the dead worker's late completion
  changes nothing; a job whose workers keep dying fails with lease-expired; a retryable failure comes
  back after its backoff, a final one is failed with its code.
- Enqueue keeps one active job per host; the refresh pass queues hosts whose report expires soon.
- POST /hvs/v2/reports/queue and GET /hvs/v2/report-jobs.
- End to end with a real trust agent on a swtpm: a queued host gets a trusted report from one worker
  iteration; unchanged evidence re-uses it (same trust report, fresh JWT); a changed boot measurement does
  not.
- `secl-central worker --once` runs one iteration and exits 0; SIGTERM stops the loop with status 0.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from secl.central import create_app
from secl.central.context import services_of
from secl.central.keyfiles import KeyFiles
from secl.central.reports import jobs
from secl.central.reports.jobs import ClaimedJob, JobFailed
from secl.central.reports.worker import Worker
from secl.central.store.db import Database
from secl.central.store.hvs_flavor_models import Host
from secl.central.store.hvs_job_models import ReportJob
from secl.central.store.hvs_report_models import HostManifestRecord, Report
from secl.core.attestation import verify_attestation_result
from tests.agent_harness import CHANGED_BOOT, HARDWARE_UUID, ProvisionedAgent, admin_headers, api
from tests.central_fixtures import CentralState
from tests.live_central import LiveCentral, _toml

UNREACHABLE = "intel:https://127.0.0.1:1"


def _database(app: Flask) -> Database:
    return app.extensions["secl.db"]


def _add_hosts(app: Flask, count: int, connection_string: str = UNREACHABLE) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with _database(app).sessions() as session:
        for index, host_id in enumerate(ids):
            session.add(
                Host(id=host_id, name=f"host-{index}-{host_id[:8]}", connection_string=connection_string)
            )
        session.commit()
    return ids


def _jobs(app: Flask) -> list[ReportJob]:
    with _database(app).sessions() as session:
        return list(session.scalars(select(ReportJob)))


@pytest.fixture
def apps(central_state: CentralState) -> Iterator[tuple[Flask, Flask]]:
    """Two apps on the same database, each with its own engine: two workers."""
    pair = (create_app(central_state.config), create_app(central_state.config))
    yield pair
    for app in pair:
        _database(app).dispose()


# --- claiming -----------------------------------------------------------------------------------------------


def test_two_workers_process_each_job_exactly_once(apps: tuple[Flask, Flask]) -> None:
    first, _ = apps
    host_ids = _add_hosts(first, 20)
    with _database(first).sessions() as session:
        queued = jobs.enqueue(session, host_ids, actor="test")
    assert len({j.id for j in queued}) == 20

    processed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def fake(name: str) -> Callable[[ClaimedJob], dict[str, object]]:
        def process(job: ClaimedJob) -> dict[str, object]:
            with lock:
                processed.append((name, job.id))
            time.sleep(0.01)  # let the other worker try to claim meanwhile
            return {"fake": True}

        return process

    errors: list[BaseException] = []

    def drain(app: Flask, name: str) -> None:
        try:
            worker = Worker(services_of(app), name=name, process=fake(name), batch_size=3, refresh=False)
            while worker.run_once():
                pass
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(app, f"w{i}")) for i, app in enumerate(apps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    ids = [job_id for _, job_id in processed]
    assert len(ids) == 20 and set(ids) == {j.id for j in queued}, processed  # each job exactly once
    rows = _jobs(first)
    assert {r.status for r in rows} == {"done"} and all(r.attempts == 1 for r in rows)
    assert all(r.result == {"fake": True} for r in rows)
    assert {r.claimed_by for r in rows} <= {"w0", "w1"}


@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_claim_skips_locked_rows(apps: tuple[Flask, Flask]) -> None:
    first, second = apps
    host_ids = _add_hosts(first, 3)
    with _database(first).sessions() as session:
        queued = jobs.enqueue(session, host_ids, actor="test")
    locked = queued[0].id
    with _database(second).engine.connect() as other:
        other.execute(text("SELECT id FROM report_jobs WHERE id = :id FOR UPDATE"), {"id": locked})
        started = time.monotonic()
        with _database(first).sessions() as session:
            session.execute(text("SET lock_timeout = '5s'"))
            claimed = jobs.claim(session, "w0", limit=10)
        assert time.monotonic() - started < 2  # skipped, not waited for
        assert {j.id for j in claimed} == {j.id for j in queued[1:]}
        other.rollback()
    with _database(first).sessions() as session:
        assert [j.id for j in jobs.claim(session, "w1", limit=10)] == [locked]


def test_expired_lease_is_claimed_again(apps: tuple[Flask, Flask]) -> None:
    app, _ = apps
    (host_id,) = _add_hosts(app, 1)
    lease = timedelta(seconds=30)
    with _database(app).sessions() as session:
        (queued,) = jobs.enqueue(session, [host_id], actor="test", max_attempts=2)
        now = datetime.now(UTC)
        (crashed,) = jobs.claim(session, "crashed", limit=5, lease=lease, now=now)
        assert crashed.id == queued.id and crashed.attempts == 1
        assert jobs.claim(session, "other", limit=5, lease=lease, now=now + timedelta(seconds=10)) == []
        (again,) = jobs.claim(session, "other", limit=5, lease=lease, now=now + timedelta(seconds=31))
        assert again.id == queued.id and again.attempts == 2 and again.claim_token != crashed.claim_token
        # The crashed worker wakes up: its completion and its failure change nothing.
        assert jobs.complete(session, crashed, report_id=None) is False
        assert jobs.fail(session, crashed, "x", "y", retryable=False) is None
        # The second worker dies too; the third claim is beyond max_attempts: failed, lease-expired.
        assert jobs.claim(session, "third", limit=5, lease=lease, now=now + timedelta(seconds=62)) == []
        row = session.get(ReportJob, queued.id)
        session.refresh(row)
        assert (row.status, row.error_code) == ("failed", "lease-expired")
        assert jobs.complete(session, again) is False


def test_a_batch_is_marked_done_at_once_except_a_job_whose_claim_was_lost(apps: tuple[Flask, Flask]) -> None:
    app, _ = apps
    host_ids = _add_hosts(app, 2)
    lease = timedelta(seconds=30)
    with _database(app).sessions() as session:
        jobs.enqueue(session, host_ids, actor="test")
        now = datetime.now(UTC)
        first, second = jobs.claim(session, "slow", limit=5, lease=lease, now=now)
        # The slow worker's lease on the second job ran out and another worker took it.
        session.execute(
            text("UPDATE report_jobs SET available_at = :t, lease_expires_at = :t WHERE id = :id"),
            {"t": now - timedelta(seconds=1), "id": second.id},
        )
        session.commit()
        (taken,) = jobs.claim(session, "other", limit=5, lease=lease)
        assert taken.id == second.id
        results = [{"report_id": None, "reused": False, "basis_digest": "b" * 64, "n": n} for n in (1, 2)]
        assert jobs.complete_many(session, [(first, results[0]), (second, results[1])]) == [True, False]
        done, running = session.get(ReportJob, first.id), session.get(ReportJob, second.id)
        session.refresh(done)
        session.refresh(running)
        assert (done.status, done.basis_digest, done.result) == ("done", "b" * 64, results[0])
        assert (running.status, running.claimed_by) == ("running", "other")


def test_renewed_lease_keeps_a_long_batch_claimed(apps: tuple[Flask, Flask]) -> None:
    app, _ = apps
    host_ids = _add_hosts(app, 3)
    lease = timedelta(seconds=30)
    with _database(app).sessions() as session:
        jobs.enqueue(session, host_ids, actor="test")
        now = datetime.now(UTC)
        batch = jobs.claim(session, "slow", limit=3, lease=lease, now=now)
        assert len(batch) == 3
        # One job is lost meanwhile (its lease expired, another worker took it): it is not renewed.
        (taken,) = jobs.claim(session, "other", limit=1, lease=lease, now=now + timedelta(seconds=31))
        kept = sorted(j.id for j in batch if j.id != taken.id)
        assert jobs.renew(session, batch, lease, now=now + timedelta(seconds=25)) == 2
        # 40 s after the claim the renewed jobs are still the slow worker's; the renewal has a limit too.
        assert jobs.claim(session, "other", limit=3, lease=lease, now=now + timedelta(seconds=40)) == []
        again = jobs.claim(session, "other", limit=3, lease=lease, now=now + timedelta(seconds=56))
        assert sorted(j.id for j in again) == kept
    assert jobs.renew(session, [], lease) == 0


def test_worker_renews_the_rest_of_its_batch_before_each_job(apps: tuple[Flask, Flask]) -> None:
    app, _ = apps
    host_ids = _add_hosts(app, 2)
    with _database(app).sessions() as session:
        jobs.enqueue(session, host_ids, actor="test")
    leases: list[datetime] = []

    def process(job: ClaimedJob) -> dict[str, object]:
        with _database(app).sessions() as session:
            row = session.get(ReportJob, job.id)
            assert row is not None and row.lease_expires_at is not None
            leases.append(row.lease_expires_at)
        time.sleep(0.05)
        return {}

    Worker(
        services_of(app), name="w", process=process, batch_size=2, refresh=False, lease=timedelta(seconds=30)
    ).run_once()
    assert len(leases) == 2 and leases[1] > leases[0]  # the second job's lease was extended before it ran


def test_worker_runs_a_batch_concurrently_and_stop_releases_what_never_started(
    apps: tuple[Flask, Flask],
) -> None:
    app, _ = apps
    host_ids = _add_hosts(app, 5)
    with _database(app).sessions() as session:
        jobs.enqueue(session, host_ids, actor="test")
    # Three jobs can pass this barrier only if three run at the same time (no timing assumptions).
    together = threading.Barrier(3, timeout=60)
    worker: Worker

    def process(job: ClaimedJob) -> dict[str, object]:
        together.wait()
        worker.stop()  # SIGTERM during the first wave: the jobs not started go back to the queue
        return {"lane": threading.current_thread().name}

    worker = Worker(services_of(app), name="w", process=process, batch_size=5, concurrency=3, refresh=False)
    outcomes = worker.run_once()
    assert [o.status for o in outcomes] == ["done"] * 3
    assert len({o.result["lane"] for o in outcomes}) == 3  # three threads
    rows = _jobs(app)
    assert sorted(r.status for r in rows) == ["done"] * 3 + ["queued"] * 2
    assert all(r.attempts == 0 for r in rows if r.status == "queued")


def test_retry_with_backoff_then_final_failure(apps: tuple[Flask, Flask]) -> None:
    app, _ = apps
    (host_id,) = _add_hosts(app, 1)
    with _database(app).sessions() as session:
        jobs.enqueue(session, [host_id], actor="test", max_attempts=2)
        (job,) = jobs.claim(session, "w", limit=1)
        assert jobs.fail(session, job, "agent-unreachable", "down", retryable=True) == "queued"
        assert jobs.claim(session, "w", limit=1) == []  # not before its backoff
        later = datetime.now(UTC) + jobs.backoff(1) + timedelta(seconds=1)
        (job,) = jobs.claim(session, "w", limit=1, now=later)
        assert job.attempts == 2
        assert jobs.fail(session, job, "agent-unreachable", "still down", retryable=True) == "failed"
        row = session.scalar(select(ReportJob))
        assert (row.status, row.error_code, row.error_message) == (
            "failed",
            "agent-unreachable",
            "still down",
        )
    assert jobs.backoff(1) == jobs.BACKOFF_BASE and jobs.backoff(30) == jobs.BACKOFF_MAX


def test_worker_records_failures_and_stop_releases_the_batch(apps: tuple[Flask, Flask]) -> None:
    app, _ = apps
    host_ids = _add_hosts(app, 3)
    with _database(app).sessions() as session:
        queued = jobs.enqueue(session, host_ids, actor="test")
    worker: Worker

    def process(job: ClaimedJob) -> dict[str, object]:
        worker.stop()  # SIGTERM arrives during the first job: it finishes, the others go back
        raise JobFailed("evidence-invalid", "bad quote", retryable=False)

    worker = Worker(services_of(app), name="w", process=process, batch_size=3, refresh=False)
    outcomes = worker.run_once()
    (outcome,) = outcomes
    assert (outcome.status, outcome.error_code) == ("failed", "evidence-invalid")
    rows = {r.id: r for r in _jobs(app)}
    assert rows[outcome.job_id].status == "failed" and rows[outcome.job_id].error_message == "bad quote"
    others = [rows[j.id] for j in queued if j.id != outcome.job_id]
    assert len(others) == 2 and all(r.status == "queued" and r.attempts == 0 for r in others)
    worker.run()  # already stopped: returns at once


def test_default_process_marks_an_unreachable_host_for_retry(apps: tuple[Flask, Flask]) -> None:
    app, _ = apps
    (host_id,) = _add_hosts(app, 1)
    with _database(app).sessions() as session:
        jobs.enqueue(session, [host_id], actor="test")
    (outcome,) = Worker(services_of(app), name="w", refresh=False).run_once()
    assert (outcome.status, outcome.error_code) == ("queued", "agent-unreachable")
    with _database(app).sessions() as session:
        assert session.get(Host, host_id).status == "unreachable"


def test_enqueue_one_active_job_per_host_and_refresh(apps: tuple[Flask, Flask]) -> None:
    app, _ = apps
    soon, later = _add_hosts(app, 2)
    now = datetime.now(UTC)
    with _database(app).sessions() as session:
        first = jobs.enqueue(session, [soon, soon], actor="test")
        assert len(first) == 1
        assert [j.id for j in jobs.enqueue(session, [soon], actor="test")] == [first[0].id]
        (job,) = jobs.claim(session, "w", limit=1)
        assert jobs.complete(session, job)
        session.add(HostManifestRecord(digest="0" * 64, document={}))
        for host_id, expires in ((soon, now + timedelta(minutes=10)), (later, now + timedelta(hours=20))):
            session.add(Report(host_id=host_id, trusted=True, created_at=now, expires_at=expires, trust_report={},
                               flavors_trust={}, host_manifest_digest="0" * 64, evidence_digest="0" * 64,
                               jwt="x", created_by="test"))  # fmt: skip
        session.commit()
    worker = Worker(services_of(app), name="w", process=lambda job: {}, refresh_cooldown=timedelta(0))
    assert [j.host_id for j in worker.refresh_pass()] == [soon]
    assert worker.refresh_pass() == []  # the host's job is still queued
    worker.refresh_cooldown = timedelta(hours=1)
    assert [o.status for o in worker.run_once()] == ["done"]
    assert worker.refresh_pass() == []  # a job within the cooldown: not again yet
    (refresh_job,) = [j for j in _jobs(app) if j.reason == "refresh"]
    assert refresh_job.status == "done" and refresh_job.created_by == "worker w"


# --- routes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_queue_and_job_routes(central_app: Flask, client: FlaskClient, admin_headers: dict[str, str]) -> None:
    host_ids = _add_hosts(central_app, 2)
    made = client.post("/hvs/v2/reports/queue", json={"host_ids": host_ids}, headers=admin_headers)
    assert made.status_code == 202, made.json
    ids = [j["id"] for j in made.json["jobs"]]
    assert [j["host_id"] for j in made.json["jobs"]] == host_ids
    assert all(j["status"] == "queued" and j["created_by"] == "admin" for j in made.json["jobs"]) or all(
        j["status"] == "queued" for j in made.json["jobs"]
    )
    again = client.post("/hvs/v2/reports/queue", json={"all": True}, headers=admin_headers)
    assert again.status_code == 202 and sorted(j["id"] for j in again.json["jobs"]) == sorted(ids)
    missing = client.post(
        "/hvs/v2/reports/queue", json={"host_ids": [str(uuid.uuid4())]}, headers=admin_headers
    )
    assert missing.status_code == 404 and missing.json["code"] == "host-not-found"
    for bad in ({}, {"all": True, "host_ids": host_ids}, {"all": False}, {"host_ids": []}):
        answer = client.post("/hvs/v2/reports/queue", json=bad, headers=admin_headers)
        assert answer.status_code == 400, (bad, answer.json)
    listed = client.get("/hvs/v2/report-jobs", query_string={"status": "queued"}, headers=admin_headers)
    assert listed.status_code == 200 and sorted(j["id"] for j in listed.json["jobs"]) == sorted(ids)
    assert client.get("/hvs/v2/report-jobs", query_string={"status": "done"}, headers=admin_headers).json == {
        "jobs": []
    }
    one = client.get("/hvs/v2/report-jobs", query_string={"hostId": host_ids[0]}, headers=admin_headers)
    assert [j["id"] for j in one.json["jobs"]] == ids[:1]


# --- the CLI ------------------------------------------------------------------------------------------------


def _cli(
    central_state: CentralState, tmp_path: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    config = tmp_path / "central.toml"
    config.write_text(_toml(central_state.config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECL_CENTRAL_", "NOTIFY_SOCKET"))}
    env |= extra_env or {}
    command = [
        sys.executable,
        "-c",
        "from secl.central.cli import main; main()",
        "--config",
        str(config),
        *args,
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_cli_worker_once_and_sigterm(central_state: CentralState, central_app: Flask, tmp_path: Path) -> None:
    host_ids = _add_hosts(central_app, 2)
    with _database(central_app).sessions() as session:
        jobs.enqueue(session, host_ids[:1], actor="test")
    once = _cli(central_state, tmp_path, "worker", "--once", "--name", "cli")
    out, err = once.communicate(timeout=120)
    assert once.returncode == 0, out + err
    assert "processed 1 job(s)" in out and "queued" in out, out  # the agent is down: retried later
    (row,) = _jobs(central_app)
    assert (row.attempts, row.error_code, row.claimed_by) == (1, "agent-unreachable", "cli")

    with _database(central_app).sessions() as session:
        jobs.enqueue(session, host_ids[1:], actor="test")
    # Under systemd (Type=notify) the worker says READY=1 when it starts polling, STOPPING=1 on SIGTERM.
    sockets = Path(tempfile.mkdtemp(prefix="secl-n-"))  # sun_path holds 108 bytes; tmp_path may be longer
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sockets / "notify"))
    notify.settimeout(60)
    looping = _cli(central_state, tmp_path, "worker", "--poll-interval", "0.1", "--name", "loop",
                   extra_env={"NOTIFY_SOCKET": str(sockets / "notify")})  # fmt: skip
    try:
        assert notify.recv(4096).decode().startswith("READY=1\n")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(r.host_id == host_ids[1] and r.attempts == 1 for r in _jobs(central_app)):
                break
            assert looping.poll() is None, looping.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("the worker did not process the job")
        looping.send_signal(signal.SIGTERM)
        out, err = looping.communicate(timeout=30)
        assert notify.recv(4096) == b"STOPPING=1"
    finally:
        notify.close()
        shutil.rmtree(sockets, ignore_errors=True)
        if looping.poll() is None:
            looping.kill()
            looping.wait()
    assert looping.returncode == 0, out + err
    assert "Traceback" not in err and "stopped" in err, err


# --- end to end with a real trust agent ---------------------------------------------------------------------


@pytest.mark.swtpm
@pytest.mark.parametrize("backend", ["sqlite"])
def test_queued_attestation_with_a_real_agent_and_reuse(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent, central_app: Flask
) -> None:
    agent = golden
    headers = admin_headers(live_central, central_state)
    host = api(live_central, headers, "POST", "/hvs/v2/hosts",
               json={"host_name": "golden", "connection_string": agent.connection_string}).json()  # fmt: skip
    imported = api(live_central, headers, "POST", "/hvs/v2/flavors/from-host", json={"host_id": host["id"]})
    assert imported.status_code == 201, imported.text
    worker = Worker(services_of(central_app), name="e2e", refresh=False)
    signing_cert = x509.load_pem_x509_certificate(
        KeyFiles(central_state.config.keys_dir).report_signing_cert.read_bytes()
    )

    def attest() -> tuple[dict, dict]:  # type: ignore[type-arg]
        queued = api(live_central, headers, "POST", "/hvs/v2/reports/queue", json={"host_ids": [host["id"]]})
        assert queued.status_code == 202, queued.text
        (outcome,) = worker.run_once()
        assert outcome.status == "done", outcome
        (job,) = api(live_central, headers, "GET", "/hvs/v2/report-jobs",
                     params={"hostId": host["id"], "status": "done", "limit": 1}).json()["jobs"]  # fmt: skip
        assert job["id"] == queued.json()["jobs"][0]["id"]
        report = api(live_central, headers, "GET", f"/hvs/v2/reports/{job['report_id']}").json()
        return job, report

    job, first = attest()
    assert job["reused"] is False and first["trusted"] is True, first["trust_report"]
    claims = verify_attestation_result(first["jwt"], signing_cert)
    assert claims.trusted and claims.report_id == first["id"] and claims.subject == HARDWARE_UUID

    time.sleep(1.1)  # a new second: a new iat
    job, second = attest()
    assert job["reused"] is True and job["result"]["reused_report_id"] == first["id"]
    assert second["id"] != first["id"] and second["trust_report"] == first["trust_report"]
    assert second["flavors_trust"] == first["flavors_trust"]
    assert second["evidence_digest"] == first["evidence_digest"] and second["jwt"] != first["jwt"]
    assert second["created"] > first["created"] and second["expiration"] > first["expiration"]
    claims = verify_attestation_result(second["jwt"], signing_cert)
    assert claims.trusted and claims.report_id == second["id"]

    agent.reboot_with(4, CHANGED_BOOT)  # changed evidence: evaluated again, untrusted
    job, third = attest()
    assert job["reused"] is False and third["trusted"] is False
    assert third["evidence_digest"] != first["evidence_digest"]


def _golden_host(
    live_central: LiveCentral, headers: dict[str, str], agent: ProvisionedAgent, name: str
) -> str:
    host = api(live_central, headers, "POST", "/hvs/v2/hosts",
               json={"host_name": name, "connection_string": agent.connection_string})  # fmt: skip
    assert host.status_code == 201, host.text
    return host.json()["id"]


def test_a_batch_is_judged_together_and_one_refused_host_fails_alone(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent, central_app: Flask
) -> None:
    """Two jobs in one batch, fetched on two lanes and judged in one transaction: the second host points
    at the same agent, so its evidence carries a hardware UUID that belongs to the first: refused, while
    the first host's report is stored."""
    headers = admin_headers(live_central, central_state)
    first = _golden_host(live_central, headers, golden, "golden")
    imported = api(live_central, headers, "POST", "/hvs/v2/flavors/from-host", json={"host_id": first})
    assert imported.status_code == 201, imported.text  # records the golden host's hardware UUID
    impostor = _golden_host(live_central, headers, golden, "impostor")
    with _database(central_app).sessions() as session:
        queued = jobs.enqueue(session, [first, impostor], actor="test")
    by_host = {job.host_id: job.id for job in queued}
    worker = Worker(services_of(central_app), name="batch", refresh=False, batch_size=5, concurrency=2)
    outcomes = {o.job_id: o for o in worker.run_once()}
    assert outcomes[by_host[first]].status == "done", outcomes
    assert outcomes[by_host[first]].result["trusted"] is True
    refused = outcomes[by_host[impostor]]
    assert (refused.status, refused.error_code) == ("failed", "evidence-invalid"), refused
    with _database(central_app).sessions() as session:
        stored = session.scalars(select(Report.host_id)).all()
        assert stored == [first]
        assert session.get(Host, impostor).status == "evidence-invalid"
        assert session.get(Host, first).status == "connected"


def test_a_batch_whose_commit_fails_is_stored_one_report_at_a_time(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent, central_app: Flask
) -> None:
    """A report that cannot be stored fails its own job only: the batch's transaction is rolled back and
    every other report stored again on its own."""
    from secl.central.reports import processor as worker_module

    headers = admin_headers(live_central, central_state)
    host_id = _golden_host(live_central, headers, golden, "golden")
    imported = api(live_central, headers, "POST", "/hvs/v2/flavors/from-host", json={"host_id": host_id})
    assert imported.status_code == 201, imported.text

    attempts: list[str] = []

    class OneBadReport(worker_module.ReportProcessor):
        def _sign(self, session, item, now):  # type: ignore[no-untyped-def]
            attempts.append(item.job.id)
            if item.job.id == "bad":
                raise RuntimeError("disk full")
            return super()._sign(session, item, now)

    def job(job_id: str) -> ClaimedJob:  # not in the queue: attest() stores reports, the Worker the jobs
        return ClaimedJob(job_id, host_id, "test", 1, 3, "test", "token")

    processor = OneBadReport(services_of(central_app), actor="test", reuse=False)
    batch = [processor.fetch(job(job_id)) for job_id in ("good-1", "bad", "good-2")]
    with central_app.app_context():
        outcomes = processor.attest(batch)
    assert attempts == ["good-1", "bad", "good-1", "bad", "good-2"]  # batch, then one by one
    good_1, bad, good_2 = outcomes
    assert isinstance(bad, JobFailed) and (bad.code, bad.retryable) == ("internal-error", True)
    assert "disk full" in bad.message
    assert not isinstance(good_1, JobFailed) and not isinstance(good_2, JobFailed)
    with _database(central_app).sessions() as session:
        stored = set(session.scalars(select(Report.id)).all())
    assert stored == {good_1["report_id"], good_2["report_id"]}


def test_a_job_that_breaks_while_judged_fails_alone(
    live_central: LiveCentral, central_state: CentralState, golden: ProvisionedAgent, central_app: Flask
) -> None:
    """An unexpected error while one job of a batch is judged (a bug, a database error) fails that job,
    retryably; the transaction starts afresh and the others are judged and stored."""
    from secl.central.reports import processor as worker_module

    headers = admin_headers(live_central, central_state)
    host_id = _golden_host(live_central, headers, golden, "golden")
    imported = api(live_central, headers, "POST", "/hvs/v2/flavors/from-host", json={"host_id": host_id})
    assert imported.status_code == 201, imported.text

    class OneBadJudgement(worker_module.ReportProcessor):
        def _judge(self, session, item, policy, now):  # type: ignore[no-untyped-def]
            super()._judge(session, item, policy, now)
            if item.job.id == "bad":
                session.execute(text("SELECT * FROM no_such_table"))  # aborts a PostgreSQL transaction

    processor = OneBadJudgement(services_of(central_app), actor="test", reuse=False)
    batch = [processor.fetch(ClaimedJob(j, host_id, "test", 1, 3, "test", "t")) for j in ("a", "bad", "b")]
    with central_app.app_context():
        first, bad, second = processor.attest(batch)
    assert isinstance(bad, JobFailed) and (bad.code, bad.retryable) == ("internal-error", True)
    assert "no_such_table" in bad.message
    assert not isinstance(first, JobFailed) and not isinstance(second, JobFailed)
    assert first["trusted"] is True and second["trusted"] is True
    with _database(central_app).sessions() as session:
        stored = set(session.scalars(select(Report.id)).all())
    assert stored == {first["report_id"], second["report_id"]}
