"""The trust agent's HTTPS API (SecL's trust-agent paths) and the one owner of its TPM connection.

``create_app(config, tpm)`` builds the WSGI app (werkzeug only, no web framework on a compute host): ``GET /v2/version``, ``GET /v2/host``, ``GET /v2/aik``
``POST /v2/tpm/quote`` (bound to the asset tag in NV when one is provisioned: SecL's qualifying data, and
the digest in ``asset_tag``; with the Measurement XMLs of this boot in ``tcb_measurements`` and the PCR 15
events in ``measure_log``, SecL's tcbMeasurements and measure-log), ``POST /v2/tag`` (writes it),
``POST /v2/deploy/manifest`` (a Manifest XML for the next boot) and ``POST /v2/host/application-measurement``
(a Manifest XML measured now; answers the Measurement XML). Every error is JSON ``{"code", "message"}``: bad input 400, TPM failures 503
with the TPM fault code. :class:`AgentTPM` serializes TPM access with one lock (a TPM runs one command at
a time, and a raw device or swtpm has no resource manager), keeps the AIK loaded, and reopens the TPM
after the connection was lost, so a TPM that comes back is used again without restarting the agent.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import signal
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from secl.trustagent import appintegrity, assettag, hostinfo
from secl.trustagent.config import AIK_HIERARCHY, AIK_KIND, TrustAgentConfig
from secl.trustagent.tpm import TPMAdapter, TPMAttestation, TPMError, TPMKey
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from secl import __version__
from secl.core.appmanifest import MAX_MANIFEST_BYTES
from secl.core.assettag import ASSET_TAG_NV_SIZE, asset_tag_digest_from_nv
from secl.core.errors import EvidenceError
from secl.core.eventlog import pcr_banks_to_json
from secl.core.hashalg import HashAlg
from secl.core.quote import secl_qualifying_data
from secl.sdnotify import notify

log = logging.getLogger("secl.trustagent")

PCR_COUNT = 24
MAX_NONCE_BYTES = 256
# After these faults the ESAPI context or the AIK handle is useless: drop both and reopen on next use.
_RECONNECT_CODES = {"tpm-unreachable", "tpm-bad-handle"}
# PCRs can move between reading them and quoting (IMA extends PCR 10 at any time): read, quote, read
# again, and accept only when both reads agree (PCRs never return to an earlier value).
_QUOTE_ATTEMPTS = 3

PCRValues = dict[HashAlg, dict[int, bytes]]


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class AgentTPM:
    """The agent's TPM: one adapter behind one lock, the AIK loaded, active banks probed once."""

    def __init__(self, open_adapter: Callable[[], TPMAdapter]) -> None:
        self._open = open_adapter
        self._lock = threading.Lock()
        self._adapter: TPMAdapter | None = None
        self._aik: TPMKey | None = None
        self._facts: hostinfo.TPMFacts | None = None

    @classmethod
    def from_config(cls, config: TrustAgentConfig) -> AgentTPM:
        return cls(lambda: TPMAdapter(config.tcti))

    @contextmanager
    def _session(self) -> Iterator[tuple[TPMAdapter, TPMKey]]:
        with self._lock:
            try:
                if self._adapter is None:
                    self._adapter = self._open()
                if self._aik is None:
                    self._aik = self._adapter.create_ak(AIK_KIND, AIK_HIERARCHY)
                yield self._adapter, self._aik
            except TPMError as exc:
                if exc.code in _RECONNECT_CODES:
                    log.warning("lost the TPM (%s); reconnecting on the next request", exc.code)
                    self._drop()
                raise

    def _drop(self) -> None:
        adapter, self._adapter, self._aik = self._adapter, None, None
        if adapter is not None:
            with contextlib.suppress(Exception):  # the connection is already broken
                adapter.close()

    def start(self) -> None:
        """Open the TPM and load the AIK now (fail fast at startup); raise :class:`TPMError`."""
        self.facts()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def aik(self) -> TPMKey:
        with self._session() as (_, aik):
            return aik

    def facts(self) -> hostinfo.TPMFacts:
        with self._session() as (tpm, _):
            if self._facts is None:
                self._facts = hostinfo.tpm_facts(tpm)
            return self._facts

    def quote(
        self, selection: dict[HashAlg, list[int]], qualifying_data: bytes
    ) -> tuple[TPMAttestation, PCRValues]:
        with self._session() as (tpm, aik):
            for _ in range(_QUOTE_ATTEMPTS):
                before = tpm.read_pcrs(selection)
                quote = tpm.quote(aik, selection, qualifying_data)
                if tpm.read_pcrs(selection) == before:
                    return quote, before
        raise TPMError("PCRs kept changing while quoting", code="tpm-pcrs-changing")

    def asset_tag(self) -> bytes | None:
        """The asset-tag digest in NV (None: no tag), read for every quote: the owner may change it."""
        with self._session() as (tpm, _):
            return assettag.read_tag(tpm)

    def write_asset_tag(self, digest: bytes) -> None:
        with self._session() as (tpm, _):
            assettag.write_tag(tpm, digest)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def parse_quote_request(body: Any, active: tuple[HashAlg, ...]) -> tuple[bytes, list[int], list[HashAlg]]:
    """Validate ``{"nonce": base64, "pcrs": [int], "pcrbanks": [name]}``; raise :class:`APIError` (400)."""
    if not isinstance(body, dict):
        raise APIError(400, "invalid-json", "the body must be a JSON object")
    unknown = sorted(set(body) - {"nonce", "pcrs", "pcrbanks"})
    if unknown:
        raise APIError(400, "unknown-field", f"unknown field(s): {', '.join(unknown)}")
    try:
        nonce = base64.b64decode(body.get("nonce", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise APIError(400, "invalid-nonce", "nonce must be a base64 string") from None
    if not 1 <= len(nonce) <= MAX_NONCE_BYTES:
        raise APIError(400, "invalid-nonce", f"nonce must decode to 1 to {MAX_NONCE_BYTES} bytes")
    pcrs = body.get("pcrs", list(range(PCR_COUNT)))
    if (
        not isinstance(pcrs, list) or not pcrs or len(set(pcrs)) != len(pcrs)
        or not all(type(p) is int and 0 <= p < PCR_COUNT for p in pcrs)
    ):  # fmt: skip
        raise APIError(
            400, "invalid-pcrs", f"pcrs must be a non-empty list of distinct integers 0-{PCR_COUNT - 1}"
        )
    names = body.get("pcrbanks", [bank.name for bank in active])
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise APIError(
            400, "invalid-pcr-banks", "pcrbanks must be a non-empty list of bank names (SHA1, SHA256, ...)"
        )
    try:
        banks = [HashAlg.from_name(name) for name in names]
    except EvidenceError as exc:
        raise APIError(400, "invalid-pcr-banks", exc.message) from None
    if len(set(banks)) != len(banks):
        raise APIError(400, "invalid-pcr-banks", "pcrbanks lists a bank twice")
    inactive = [bank.name for bank in banks if bank not in active]
    if inactive:
        raise APIError(
            400, "pcr-bank-not-active",
            f"PCR bank(s) {', '.join(inactive)} not active in this TPM (active: {', '.join(b.name for b in active)})",
        )  # fmt: skip
    return nonce, sorted(pcrs), banks


def parse_tag_request(body: Any) -> tuple[bytes, str | None]:
    """Validate SecL's ``{"tag": base64 of 48 bytes, "hardware_uuid": str}``; raise :class:`APIError` (400)."""
    if not isinstance(body, dict):
        raise APIError(400, "invalid-json", "the body must be a JSON object")
    unknown = sorted(set(body) - {"tag", "hardware_uuid"})
    if unknown:
        raise APIError(400, "unknown-field", f"unknown field(s): {', '.join(unknown)}")
    try:
        tag = base64.b64decode(body.get("tag", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise APIError(400, "invalid-tag", "tag must be a base64 string") from None
    if len(tag) != ASSET_TAG_NV_SIZE:
        raise APIError(
            400,
            "invalid-tag",
            f"tag must decode to the {ASSET_TAG_NV_SIZE}-byte SHA-384 of a tag certificate",
        )
    hardware_uuid = body.get("hardware_uuid")
    if hardware_uuid is not None and not isinstance(hardware_uuid, str):
        raise APIError(400, "invalid-hardware-uuid", "hardware_uuid must be a string")
    return tag, hardware_uuid


def _read_event_log(config: TrustAgentConfig) -> tuple[str | None, str | None]:
    try:
        return _b64(config.event_log_path.read_bytes()), None
    except OSError as exc:
        return None, f"cannot read {config.event_log_path}: {exc.strerror or exc}"


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json({"code": code, "message": message}, status)


class AgentApp:
    """The agent's WSGI application: seven routes on werkzeug alone.

    A compute host installs no web framework: the API is a handful of JSON and XML routes, which werkzeug's
    routing and request objects serve directly; every failure goes through :meth:`_error_response`.
    """

    max_body = 64 * 1024
    # A manifest of many files is larger than any JSON request; the manifest parser has its own cap.
    _manifest_routes = frozenset({"/v2/deploy/manifest", "/v2/host/application-measurement"})

    def __init__(self, config: TrustAgentConfig, tpm: AgentTPM) -> None:
        self.config, self.tpm = config, tpm
        self.sources = hostinfo.HostSources.from_config(config)
        self.routes = Map(
            [
                Rule("/v2/version", endpoint="version", methods=["GET"]),
                Rule("/v2/host", endpoint="host", methods=["GET"]),
                Rule("/v2/aik", endpoint="aik", methods=["GET"]),
                Rule("/v2/tpm/quote", endpoint="quote", methods=["POST"]),
                Rule("/v2/tag", endpoint="tag", methods=["POST"]),
                Rule("/v2/deploy/manifest", endpoint="deploy_manifest", methods=["POST"]),
                Rule(
                    "/v2/host/application-measurement", endpoint="application_measurement", methods=["POST"]
                ),
            ]
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        manifest = request.path in self._manifest_routes
        request.max_content_length = MAX_MANIFEST_BYTES if manifest else self.max_body
        try:
            endpoint, _ = self.routes.bind_to_environ(environ).match()
            result = getattr(self, f"_{endpoint}")(request)
            response = result if isinstance(result, Response) else _json(result)
        except Exception as exc:  # every failure becomes one JSON error; see _error_response
            response = self._error_response(request, exc)
        return response(environ, start_response)

    def test_client(self) -> Client:
        return Client(self, Response)

    def _error_response(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, APIError):
            return _error(exc.status, exc.code, exc.message)
        if isinstance(exc, appintegrity.ApplicationIntegrityError):
            return _error(exc.status, exc.code, str(exc))
        if isinstance(exc, TPMError):
            log.error("TPM failure: %s", exc)
            return _error(503, exc.code, f"the TPM cannot answer: {exc}")
        if isinstance(exc, HTTPException):
            code = (exc.name or "error").lower().replace(" ", "-")
            return _error(exc.code or 500, code, exc.description or code)
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error(500, "internal-error", "internal error; see the trust agent's log")

    def _version(self, _request: Request) -> dict[str, str]:
        return {"service": "TA", "api": "v2", "version": __version__}

    def _host(self, _request: Request) -> dict[str, Any]:
        return hostinfo.collect(self.sources, self.tpm.facts())

    def _aik(self, _request: Request) -> dict[str, Any]:
        key = self.tpm.aik()
        cert = self.config.state.aik_cert
        return {
            "aik": key.pem().decode(),
            "aik_public": _b64(key.public),
            "aik_name": key.name.hex(),
            "aik_certificate": cert.read_text() if cert.is_file() else None,
        }

    def _quote(self, request: Request) -> dict[str, Any]:
        body = request.get_json(force=True, silent=True)
        nonce, pcrs, banks = parse_quote_request(body, self.tpm.facts().banks)
        selection = {bank: pcrs for bank in banks}
        tag = self.tpm.asset_tag()  # SecL's binding: with a tag, SHA-256(SHA-256(nonce) || tag)
        attestation, values = self.tpm.quote(selection, secl_qualifying_data(nonce, tag))
        event_log, problem = _read_event_log(self.config)  # after the quote: a log may only have grown since
        # SecL's tcbMeasurements (the Measurement XMLs of this boot) and its measure-log (PCR 15 events).
        measured = appintegrity.quote_measurements(
            self.config.measurement_dir, self.config.application_event_log
        )
        response: dict[str, Any] = {
            "attest": _b64(attestation.attest),
            "signature": _b64(attestation.signature),
            "aik_name": self.tpm.aik().name.hex(),
            "pcr_banks": [bank.name for bank in banks],
            "pcrs": pcr_banks_to_json(values),
            "event_log": event_log,
            "is_tag_provisioned": tag is not None,
            "tcb_measurements": list(measured.measurement_xmls),
            "measure_log": measured.measure_log,
        }
        if measured.problem:
            response["measurement_error"] = measured.problem
        if tag is not None:
            response["asset_tag"] = _b64(tag)
        if problem:
            response["event_log_error"] = problem
        return response

    def _tag(self, request: Request) -> dict[str, Any]:
        """Write the asset-tag digest the central sends into NV (all zeros removes the tag). A tag meant
        for another machine (``hardware_uuid``, when given, is not this host's) is refused (409)."""
        tag, hardware_uuid = parse_tag_request(request.get_json(force=True, silent=True))
        if hardware_uuid is not None:
            ours = hostinfo.read_smbios(self.sources, []).hardware_uuid
            if str(ours or "").lower() != hardware_uuid.strip().lower():
                raise APIError(
                    409, "hardware-uuid-mismatch",
                    f"the tag is for hardware UUID {hardware_uuid}, this host is {ours or '(unknown)'}",
                )  # fmt: skip
        self.tpm.write_asset_tag(tag)
        provisioned = asset_tag_digest_from_nv(tag)
        log.info("asset tag %s", f"written: {tag.hex()}" if provisioned else "removed")
        return {
            "is_tag_provisioned": provisioned is not None,
            "asset_tag": _b64(tag) if provisioned else None,
        }

    def _deploy_manifest(self, request: Request) -> dict[str, Any]:
        """Store a SecL Manifest XML (the body) for the initrd to measure from the next boot on."""
        manifest = appintegrity.deploy_manifest(self.config.manifest_path, request.get_data())
        log.info("manifest %s (%s) deployed for the next boot", manifest.uuid, manifest.label)
        return {"label": manifest.label, "uuid": manifest.uuid, "digest_alg": manifest.digest_alg.value}

    def _application_measurement(self, request: Request) -> Response:
        """Measure the posted Manifest XML against this host's files now; answer the Measurement XML."""
        xml = appintegrity.measure_now(request.get_data(), self.config.measurement_root)
        return Response(xml, status=200, mimetype="application/xml")


def create_app(config: TrustAgentConfig, tpm: AgentTPM) -> AgentApp:
    """The agent's API over ``tpm``; host info sources and the event log come from ``config``."""
    return AgentApp(config, tpm)


# --- serving: HTTPS with client certificates, readiness, SIGTERM -------------------------------------

HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 10.0  # keep-alive connections idle this long are closed (and no longer delay shutdown)


def mtls_context(config: TrustAgentConfig) -> ssl.SSLContext:
    """TLS 1.2+ with the agent's certificate; clients must present one that chains to the central's CA."""
    files = config.state
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.tls_cert, files.tls_key)
    context.load_verify_locations(cafile=files.central_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class _Handler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT


class MTLSServer(ThreadedWSGIServer):
    """werkzeug's threaded WSGI server, with the TLS handshake done in the connection's own thread (a
    client that stalls its handshake holds only its thread, not the accept loop) and requests drained on
    shutdown (non-daemon threads, joined by ``server_close``)."""

    daemon_threads = False
    block_on_close = True

    def __init__(
        self, host: str, port: int, app: AgentApp, context: ssl.SSLContext, allowed_clients: frozenset[str]
    ) -> None:
        super().__init__(host, port, app, handler=_Handler)
        self.ssl_context = context  # werkzeug reads it for wsgi.url_scheme and SSL_CLIENT_CERT
        # SHA-256 of the keys of the clients served: the central's. Every enrolled host holds a certificate
        # from the same CA, so chaining to it is not enough: another host must not read this one's TPM.
        self.allowed_clients = allowed_clients

    def finish_request(self, request: Any, client_address: Any) -> None:  # runs in the connection's thread
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            connection = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.warning("TLS handshake with %s refused: %s", client_address[0], exc)
            return
        try:
            if client_key_sha256(connection.getpeercert(binary_form=True)) not in self.allowed_clients:
                log.warning("client %s refused: its certificate is not the central's", client_address[0])
                return
            super().finish_request(connection, client_address)
        finally:
            connection.close()


def client_key_sha256(der: bytes | None) -> str:
    """SHA-256 (hex) of a certificate's SubjectPublicKeyInfo; "" when there is no certificate."""
    if not der:
        return ""
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return hashlib.sha256(spki).hexdigest()


def serve(server: MTLSServer) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, finish requests in flight, and return."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    loop = threading.Thread(target=server.serve_forever, name="accept", daemon=True)
    loop.start()
    log.info("listening on https://%s:%d (client certificates required)", server.host, server.port)
    notify("READY=1")
    while not stop.wait(1.0):
        pass
    log.info("stopping: finishing requests in flight")
    notify("STOPPING=1")
    server.shutdown()  # ends serve_forever, whose server_close() joins the request threads
    loop.join()
