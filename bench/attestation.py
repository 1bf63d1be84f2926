"""Bench: full attestation reports per second on recorded evidence, and central CPU per live attestation.

Run: ``.venv/bin/python bench/attestation.py [--seconds N] [--live-reports N] [--profile] [--log CORPUS_LOG]``.
Bars (DESIGN.md §7, "Full attestation"): ≥ 500 verified reports/s per core on recorded evidence, and an
end-to-end report for one host in < 100 ms of central CPU beyond the TPM's own time. The baseline is the
bare quote verification of the evidence-core bench (``bench/quote_verify.py``) on the same evidence.

One stack serves both figures, all real: ``secl-central setup`` into a temp dir (SQLite), the central under
gunicorn, a swtpm (manufactured by ``tests/swtpm.py``) whose PCRs are extended from a ≈100-event corpus
UEFI log (SecL's trust-agent test log: 116 events, sha1+sha256), ``secl-trustagent setup`` (AIK enrolled
with the central's Privacy CA) and ``secl-trustagent run`` serving that log, the host registered and its
flavors imported from it through the default templates (``POST /hvs/v2/flavors/from-host``). Then gunicorn
stops and this process runs the same central application (``create_app``) for the measurements:

(a) Recorded evidence. The agent's three answers (``GET /v2/host``, ``GET /v2/aik``, ``POST /v2/tpm/quote``
    over one nonce) are recorded once as JSON bodies. Reports are then made by exactly the code of
    ``secl-central worker`` minus the network: the bodies decoded as the agent client decodes them
    (``agentclient.decode_json_object``, ``decode_quote_response``), then ``ReportProcessor.attest`` over
    the batch, on the central's service context built without Flask as the worker builds it
    (``open_services``): the hosts read, every quote verified and manifest built (``accept_evidence``),
    every host judged (its flavor groups and flavors in one statement, each flavor verified, every rule of
    every flavor), every report signed (ES256 JWT) and stored, one commit for the batch. ``reuse=False``:
    no report is copied from the host's previous one, every rule runs. Four figures:
    - warm, in the worker's batches (``BATCH_SIZE``, 10): the central's memos as in service. What an
      unchanged host sends again (its AIK certificate, PCR values, event log) and an unchanged flavor row
      come from the central's memos, keyed on their exact inputs or compared byte for byte: the manifest is
      not rebuilt, a flavor not re-parsed; but the quote is verified, every rule runs, and the report is
      signed and stored every time. This is a fleet re-attested between reboots, the load the bar
      describes. The bar is measured on this figure.
    - warm batches as ``secl-central worker`` runs by default: the same, plus the check whether the
      host's newest report can be re-used (its basis: groups, flavors, anchors, AIK, tags). It never can
      here (the recorded reports were not made by queued jobs), so every report is also judged in full:
      what the check costs on top.
    - warm, one report at a time (a batch of one): a worker with one job, and close to what
      ``POST /hvs/v2/reports`` costs without the network.
    - cold: batches of one with the memos emptied before each, so each report parses and replays the log
      and parses and verifies every flavor: the first report after a host's reboot or a flavor change.
(b) Live. N ``POST /hvs/v2/reports`` through the Flask test client; ``time.process_time()`` around each is
    this process's CPU only: the agent and the swtpm are other processes, so the TPM's time (and the
    agent's) is excluded; mTLS to the agent, JSON, the ORM and SQLite are included.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import json
import os
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from secl.core.eventlog import parse_event_log, pcr_banks_from_json  # noqa: E402
from secl.core.quote import secl_qualifying_data, verify_quote  # noqa: E402
from secl.core.tpm import load_ak_public  # noqa: E402
from tests.swtpm import manufacture, start_swtpm  # noqa: E402

# The bar's "≈100-event UEFI log": SecL's own trust-agent test log (116 events, sha1+sha256, PCRs 0-9).
BENCH_LOG = "intel-secl/pkg/tagent/test/eventlog/uefi_event_log.bin"
BAR_RATE, BAR_CPU_MS = 500.0, 100.0


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def interleaved_rates(
    fns: list[Callable[[], object]], seconds: float, slice_s: float = 0.25, per_call: list[int] | None = None
) -> list[float]:
    """Mean rate of each function over ``seconds`` each, measured in interleaved slices (same load): calls/s,
    times ``per_call[k]`` (the reports one call makes) when given."""
    counts, spent = [0] * len(fns), [0.0] * len(fns)
    while min(spent) < seconds:
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            n = 0
            while (elapsed := time.perf_counter() - start) < slice_s:
                fn()
                n += 1
            counts[k] += n
            spent[k] += elapsed
    weights = per_call or [1] * len(fns)
    return [w * c / s for w, c, s in zip(weights, counts, spent, strict=True)]


def profile(fn: Callable[[], object], calls: int, top: int, label: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top + 10)
    print(f"\n--- profile of {calls} {label} (own time, then cumulative) ---")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


def _filesystem(path: Path) -> str:
    try:
        out = subprocess.run(["df", "--output=fstype", str(path)], capture_output=True, text=True, check=True)
        return out.stdout.split()[-1]
    except (OSError, subprocess.CalledProcessError):
        return "filesystem unknown"


# --- (b) live: central in process, agent on swtpm ---------------------------------------------------------


def _start_gunicorn(config: Any, work: Path) -> Any:
    from secl.central.config import ENV_PREFIX
    from secl.central.keyfiles import KeyFiles
    from tests.live_central import GUNICORN, WSGI_APP, LiveCentral, _toml

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    config = replace(config, listen=f"127.0.0.1:{port}")
    (work / "central.toml").write_text(_toml(config))
    notify_path = work / "notify-central"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(60)
    env = {k: v for k, v in os.environ.items() if not k.startswith((ENV_PREFIX, "GUNICORN_"))}
    env |= {f"{ENV_PREFIX}CONFIG": str(work / "central.toml"), "NOTIFY_SOCKET": str(notify_path),
            "GUNICORN_CMD_ARGS": "--workers 1 --threads 4"}  # fmt: skip
    log = work / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen([*GUNICORN, WSGI_APP], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        while b"READY=1" not in notify.recv(4096).split(b"\n"):
            pass
    except TimeoutError:
        process.kill()
        sys.exit(f"the central sent no READY=1 within 60 s:\n{log.read_text()}")
    finally:
        notify.close()
    return LiveCentral(
        f"https://127.0.0.1:{port}", KeyFiles(config.keys_dir).root_ca_cert, config, process, log
    )


@dataclass
class Stack:
    """The central (stopped gunicorn; in this process its services as the worker runs them, and the app),
    the agent on its swtpm, the registered host."""

    work: Path
    config: Any
    services: Any
    app: Any
    host_id: str
    agent: Any
    swtpm_process: subprocess.Popen[bytes]
    admin: tuple[str, str]
    imported: list[str]
    processors: dict[bool, Any] = field(default_factory=dict)

    def stop(self) -> None:
        from secl.central.context import services_of

        self.services.database.dispose()
        services_of(self.app).database.dispose()
        self.agent.stop()
        _stop(self.swtpm_process)


def start_stack(work: Path, log_name: str) -> Stack:
    from secl.central import create_app
    from secl.central.config import CentralConfig
    from secl.central.context import open_services, services_of
    from secl.central.setup import run_setup
    from tests.agent_harness import admin_headers, api, provision_agent
    from tests.central_fixtures import CentralState

    config = CentralConfig(state_dir=work / "central", database_url="", hostname="localhost")
    setup = run_setup(config)
    assert setup.admin_credential is not None
    username, password = setup.admin_credential.read_text().strip().split(":", 1)
    central = CentralState(config, username, password, setup.root_ca_fingerprint_sha384)
    live = _start_gunicorn(config, work)
    state = manufacture(work / "tpm-manufactured")
    swtpm_process, swtpm = start_swtpm(state, work / "tpm")
    agent = None
    try:
        agent_dir = work / "agent"
        agent_dir.mkdir()
        agent = provision_agent(live, central, swtpm, agent_dir, work, event_log=log_name)
        headers = admin_headers(live, central)
        host = api(live, headers, "POST", "/hvs/v2/hosts",
                   json={"host_name": "bench-host", "connection_string": agent.connection_string})  # fmt: skip
        assert host.status_code == 201, host.text
        host_id = host.json()["id"]
        imported = api(live, headers, "POST", "/hvs/v2/flavors/from-host", json={"host_id": host_id})
        assert imported.status_code == 201, imported.text
        parts = [
            f"{f['flavor']['meta']['description']['flavor_part']} ({len(f['flavor'].get('pcrs') or [])} PCRs)"
            for f in imported.json()["signed_flavors"]
        ]
    except BaseException:
        if agent is not None:
            agent.stop()
        _stop(swtpm_process)
        raise
    finally:
        _stop(live.process)  # from here on only this process serves the central
    services = open_services(config)  # as secl-central worker builds them
    services.database.start_checkpointer()  # as secl-central worker and gunicorn's workers do
    app = create_app(config)
    services_of(app).database.start_checkpointer()
    return Stack(work, config, services, app, host_id, agent, swtpm_process, (username, password), parts)


# --- (a) recorded evidence --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """The agent's three answers as the central receives them (JSON bodies), and the nonce it sent."""

    host_body: bytes
    aik_body: bytes
    quote_body: bytes
    nonce: bytes


def record_evidence(stack: Stack) -> Recorded:
    from secl.central.evidence.hostinfo import BANKS
    from secl.central.keyfiles import KeyFiles

    keys = KeyFiles(stack.config.keys_dir)
    cert, verify = (str(keys.tls_cert), str(keys.tls_key)), str(keys.root_ca_cert)
    base = stack.agent.connection_string.removeprefix("intel:")
    nonce = os.urandom(32)
    get = lambda path: requests.get(base + path, cert=cert, verify=verify, timeout=60)  # noqa: E731
    host, aik = get("/v2/host"), get("/v2/aik")
    banks = [b for b in BANKS if b in {str(x).upper() for x in host.json().get("pcr_banks", [])}]
    request = {"nonce": base64.b64encode(nonce).decode(), "pcrs": list(range(24)), "pcrbanks": banks}
    quote = requests.post(base + "/v2/tpm/quote", json=request, cert=cert, verify=verify, timeout=60)
    for answer in (host, aik, quote):
        answer.raise_for_status()
    return Recorded(host.content, aik.content, quote.content, nonce)


def recorded_batch(
    stack: Stack, recorded: Recorded, size: int, *, cold: bool = False, reuse: bool = False
) -> list[bool]:
    """``size`` reports from the recorded answers through the worker's own code; returns the verdicts.

    As ``secl-central worker`` runs a claimed batch once its lanes have fetched the evidence: the agent's
    answers decoded as the agent client decodes them, then :meth:`ReportProcessor.attest` (one session:
    every quote verified, every host judged, every report signed and stored, one commit). ``reuse=False``:
    every report is judged in full, never copied from the host's previous one; ``reuse=True`` as the worker
    runs by default.
    """
    from secl.central.evidence.agentclient import decode_json_object, decode_quote_response
    from secl.central.evidence.fetch import FetchedEvidence
    from secl.central.evidence.hostinfo import ClaimedHostInfo
    from secl.central.reports.jobs import ClaimedJob, JobFailed
    from secl.central.reports.processor import Fetched, ReportProcessor

    if cold:
        stack.services.memos.forget()
    processor = stack.processors.get(reuse)
    if processor is None:
        processor = stack.processors[reuse] = ReportProcessor(stack.services, actor="bench", reuse=reuse)
    batch = []
    for n in range(size):
        evidence = FetchedEvidence(
            recorded.nonce,
            ClaimedHostInfo(decode_json_object(recorded.host_body, "GET /v2/host")),
            decode_json_object(recorded.aik_body, "GET /v2/aik"),
            decode_quote_response(decode_json_object(recorded.quote_body, "POST /v2/tpm/quote")),
        )
        batch.append(Fetched(ClaimedJob(f"bench-{n}", stack.host_id, "bench", 1, 1, "bench", "-"), evidence))
    outcomes = processor.attest(batch)
    failed = [o for o in outcomes if isinstance(o, JobFailed)]
    assert not failed, f"{failed[0].code}: {failed[0].message}"
    return [bool(o["trusted"]) for o in outcomes if not isinstance(o, JobFailed)]


def recorded_report(stack: Stack, recorded: Recorded, *, cold: bool = False) -> bool:
    """One report (a batch of one) from the recorded answers; returns the verdict."""
    (trusted,) = recorded_batch(stack, recorded, 1, cold=cold)
    return trusted


def bench_recorded(
    stack: Stack, seconds: float, want_profile: bool, log_name: str
) -> tuple[float, float, float]:
    from sqlalchemy import func, select

    from secl.central.evidence.agentclient import decode_quote_response
    from secl.central.reports.worker import BATCH_SIZE
    from secl.central.store.hvs_report_models import Report

    recorded = record_evidence(stack)
    assert recorded_report(stack, recorded), "the recorded host must be trusted by its own flavors"
    # The baseline: verify_quote alone with the key and PCR values preloaded, as bench/quote_verify.py.
    answer = decode_quote_response(json.loads(recorded.quote_body))
    ak = load_ak_public(json.loads(recorded.aik_body)["aik_certificate"].encode())
    pcrs, qd = pcr_banks_from_json(answer.pcrs), secl_qualifying_data(recorded.nonce)
    assert answer.event_log is not None
    events = len(parse_event_log(answer.event_log).events)
    print("(a) reports per second on one core from recorded evidence")
    print(f"    evidence: secl-trustagent on a swtpm (RSA-2048 AIK from the central's Privacy CA), quote of "
          f"sha1+sha256 x 24 PCRs; {log_name}: {events} events")  # fmt: skip
    print(f"    flavors: {', '.join(stack.imported)} imported through the default templates, P-384 signed")
    print(f"    store: the central's SQLite (WAL, synchronous=NORMAL); a report row each, one commit per batch "
          f"({_filesystem(stack.work)})")  # fmt: skip
    size = BATCH_SIZE  # the worker's default batch
    warm, checked, single, cold, bare = interleaved_rates(
        [lambda: recorded_batch(stack, recorded, size),
         lambda: recorded_batch(stack, recorded, size, reuse=True),
         lambda: recorded_report(stack, recorded),
         lambda: recorded_report(stack, recorded, cold=True),
         lambda: verify_quote(ak, answer.attest, answer.signature, qualifying_data=qd, pcrs=pcrs)],
        seconds, per_call=[size, size, 1, 1, 1],
    )  # fmt: skip
    with stack.services.database.sessions() as session:
        stored = session.scalar(select(func.count()).select_from(Report))
    print(f"    warm, the worker's batch of {size} (unchanged hosts: manifests + flavors from the memos): "
          f"{warm:8,.0f} reports/s  ({1000 / warm:.2f} ms each)")  # fmt: skip
    print(f"    warm batches as the worker runs by default (re-use checked, never possible here):  "
          f"{checked:8,.0f} reports/s  ({1000 / checked:.2f} ms each)")  # fmt: skip
    print(f"    warm, one report at a time (a batch of 1):                                   "
          f"{single:8,.0f} reports/s  ({1000 / single:.2f} ms each)")  # fmt: skip
    print(f"    cold, one at a time (log parsed + replayed, flavors parsed + verified):      "
          f"{cold:8,.0f} reports/s  ({1000 / cold:.2f} ms each)")  # fmt: skip
    print(f"    baseline: bare verify_quote of the same evidence:                            "
          f"{bare:8,.0f} /s  ({1000 / bare:.3f} ms each)")  # fmt: skip
    print(f"    ratio baseline/report: warm batch {bare / warm:.1f}x, one at a time {bare / single:.1f}x, "
          f"cold {bare / cold:.1f}x;  {stored:,} reports stored")  # fmt: skip
    print(f"    bar >= {BAR_RATE:,.0f} reports/s on one core: warm batch {'MET' if warm >= BAR_RATE else 'NOT MET'}, "
          f"one at a time {'MET' if single >= BAR_RATE else 'NOT MET'}, cold {'MET' if cold >= BAR_RATE else 'NOT MET'}")  # fmt: skip
    if want_profile:
        profile(lambda: recorded_batch(stack, recorded, size), 30, 20, f"warm batches of {size} reports")
        profile(
            lambda: recorded_report(stack, recorded, cold=True), 100, 20, "cold recorded-evidence reports"
        )
    return warm, cold, bare


def bench_live(stack: Stack, reports: int, want_profile: bool) -> float:
    from secl.central.evidence.agentclient import AgentClient
    from secl.central.keyfiles import KeyFiles

    print("\n(b) central CPU time per live attestation (POST /hvs/v2/reports), beyond the TPM's own time")
    client = stack.app.test_client()
    username, password = stack.admin
    token = client.post("/aas/v1/token", json={"username": username, "password": password}).json["token"]
    auth = {"Authorization": f"Bearer {token}"}

    def one() -> bool:
        made = client.post("/hvs/v2/reports", json={"host_id": stack.host_id}, headers=auth)
        assert made.status_code == 201, made.get_data(as_text=True)
        return made.json["trusted"]

    assert one() and one(), "the golden host must be trusted"  # warm-up: keys loaded, caches filled
    cpu, wall = [], []
    for _ in range(reports):
        c0, w0 = time.process_time(), time.perf_counter()
        trusted = one()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        assert trusted
    # The agent's side for context: its three answers as the central asks for them, timed from here.
    agent_client = AgentClient(stack.agent.connection_string, KeyFiles(stack.config.keys_dir))
    quote_wall, quote_cpu, calls_wall = [], [], []
    for _ in range(min(reports, 20)):
        c0, w0 = time.process_time(), time.perf_counter()
        agent_client.quote(os.urandom(32), list(range(24)), ["SHA1", "SHA256"])
        quote_wall.append(time.perf_counter() - w0)
        quote_cpu.append(time.process_time() - c0)
        w0 = time.perf_counter()
        agent_client.host_info()
        agent_client.aik()
        calls_wall.append(time.perf_counter() - w0)
    if want_profile:
        profile(one, 20, 15, "live POST /hvs/v2/reports")

    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    mean_cpu = 1000 * sum(cpu) / len(cpu)
    print(f"    stack: central in process (Flask test client, SQLite), secl-trustagent run on swtpm, mTLS; "
          f"{reports} reports, all trusted")  # fmt: skip
    print(f"    central CPU per report (time.process_time, this process only): mean {mean_cpu:.1f} ms, "
          f"median {1000 * med(cpu):.1f} ms, max {1000 * max(cpu):.1f} ms")  # fmt: skip
    print(
        f"    wall per report: mean {1000 * sum(wall) / len(wall):.1f} ms, median {1000 * med(wall):.1f} ms"
    )
    print(f"    context: agent POST /v2/tpm/quote wall {1000 * med(quote_wall):.1f} ms median "
          f"(of which the client side's CPU {1000 * med(quote_cpu):.1f} ms); GET /v2/host + /v2/aik wall "
          f"{1000 * med(calls_wall):.1f} ms")  # fmt: skip
    print(
        f"    bar < {BAR_CPU_MS:.0f} ms central CPU per report: {'MET' if mean_cpu < BAR_CPU_MS else 'NOT MET'}"
    )
    return mean_cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per figure in (a)")
    parser.add_argument("--live-reports", type=int, default=30, help="timed POST /hvs/v2/reports in (b)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top costs of both")
    parser.add_argument("--log", default=BENCH_LOG, help="corpus event log for (a) (sha1+sha256)")
    parser.add_argument("--no-live", action="store_true", help="only (a)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        core = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {core})  # this process on one core; swtpm and the agent are other processes
    # A short private directory: unix socket paths (sd_notify) must fit in 108 bytes.
    work = Path(tempfile.mkdtemp(prefix="secl-bench-"))
    try:
        stack = start_stack(work, args.log)
        try:
            warm, cold, bare = bench_recorded(stack, args.seconds, args.profile, args.log)
            cpu_ms = None if args.no_live else bench_live(stack, args.live_reports, args.profile)
        finally:
            stack.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\nsummary")
    print(f"    reports/s on one core from recorded evidence: warm (worker batches) {warm:,.0f}, cold {cold:,.0f} (bar >= "
          f"{BAR_RATE:,.0f}: warm {'MET' if warm >= BAR_RATE else 'NOT MET'}, cold "
          f"{'MET' if cold >= BAR_RATE else 'NOT MET'}); baseline bare quote verification {bare:,.0f}/s; "
          f"ratio {bare / warm:.1f}x warm, {bare / cold:.1f}x cold")  # fmt: skip
    if cpu_ms is not None:
        print(f"    central CPU per live attestation: {cpu_ms:.1f} ms (bar < {BAR_CPU_MS:.0f} ms: "
              f"{'MET' if cpu_ms < BAR_CPU_MS else 'NOT MET'})")  # fmt: skip
    ok = warm >= BAR_RATE and (cpu_ms is None or cpu_ms < BAR_CPU_MS)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
