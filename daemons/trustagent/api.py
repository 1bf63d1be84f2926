"""The trust agent's HTTPS API (SecL's trust-agent paths) as a WSGI app on werkzeug alone.

``create_app(config, tpm)`` builds it: ``GET /v2/version``, ``GET /v2/host``, ``GET /v2/aik``,
``POST /v2/tpm/quote`` (bound to the asset tag in NV when one is provisioned: SecL's qualifying data, and
the digest in ``asset_tag``; with the Measurement XMLs of this boot in ``tcb_measurements`` and the PCR 15
events in ``measure_log``, SecL's tcbMeasurements and measure-log), ``POST /v2/tag`` (writes it),
``POST /v2/deploy/manifest`` (a Manifest XML for the next boot) and ``POST /v2/host/application-measurement``
(a Manifest XML measured now; answers the Measurement XML). Every error is JSON ``{"code", "message"}``:
an :class:`~secl.trustagent.errors.AgentAPIError` with its status (bad input 400), TPM failures 503 with
the TPM fault code. The TPM is reached only through :class:`~secl.trustagent.agenttpm.AgentTPM`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from secl import __version__
from secl.core.appmanifest import MAX_MANIFEST_BYTES
from secl.core.assettag import ASSET_TAG_NV_SIZE, asset_tag_digest_from_nv
from secl.core.errors import EvidenceError
from secl.core.eventlog import pcr_banks_to_json
from secl.core.hashalg import HashAlg
from secl.core.quote import secl_qualifying_data
from secl.host.tpm import TPMError
from secl.trustagent import appintegrity, hostinfo
from secl.trustagent.agenttpm import AgentTPM
from secl.trustagent.config import TrustAgentConfig
from secl.trustagent.errors import AgentAPIError

__all__ = ["AgentApp", "create_app", "parse_quote_request", "parse_tag_request"]

log = logging.getLogger("secl.trustagent")

PCR_COUNT = 24
MAX_NONCE_BYTES = 256


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def parse_quote_request(body: Any, active: tuple[HashAlg, ...]) -> tuple[bytes, list[int], list[HashAlg]]:
    """Validate ``{"nonce": base64, "pcrs": [int], "pcrbanks": [name]}``; raise :class:`AgentAPIError` (400)."""
    if not isinstance(body, dict):
        raise AgentAPIError(400, "invalid-json", "the body must be a JSON object")
    unknown = sorted(set(body) - {"nonce", "pcrs", "pcrbanks"})
    if unknown:
        raise AgentAPIError(400, "unknown-field", f"unknown field(s): {', '.join(unknown)}")
    try:
        nonce = base64.b64decode(body.get("nonce", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise AgentAPIError(400, "invalid-nonce", "nonce must be a base64 string") from None
    if not 1 <= len(nonce) <= MAX_NONCE_BYTES:
        raise AgentAPIError(400, "invalid-nonce", f"nonce must decode to 1 to {MAX_NONCE_BYTES} bytes")
    pcrs = body.get("pcrs", list(range(PCR_COUNT)))
    if (
        not isinstance(pcrs, list) or not pcrs or len(set(pcrs)) != len(pcrs)
        or not all(type(p) is int and 0 <= p < PCR_COUNT for p in pcrs)
    ):  # fmt: skip
        raise AgentAPIError(
            400, "invalid-pcrs", f"pcrs must be a non-empty list of distinct integers 0-{PCR_COUNT - 1}"
        )
    names = body.get("pcrbanks", [bank.name for bank in active])
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise AgentAPIError(
            400, "invalid-pcr-banks", "pcrbanks must be a non-empty list of bank names (SHA1, SHA256, ...)"
        )
    try:
        banks = [HashAlg.from_name(name) for name in names]
    except EvidenceError as exc:
        raise AgentAPIError(400, "invalid-pcr-banks", exc.message) from None
    if len(set(banks)) != len(banks):
        raise AgentAPIError(400, "invalid-pcr-banks", "pcrbanks lists a bank twice")
    inactive = [bank.name for bank in banks if bank not in active]
    if inactive:
        raise AgentAPIError(
            400, "pcr-bank-not-active",
            f"PCR bank(s) {', '.join(inactive)} not active in this TPM (active: {', '.join(b.name for b in active)})",
        )  # fmt: skip
    return nonce, sorted(pcrs), banks


def parse_tag_request(body: Any) -> tuple[bytes, str | None]:
    """Validate SecL's ``{"tag": base64 of 48 bytes, "hardware_uuid": str}``; raise :class:`AgentAPIError` (400)."""
    if not isinstance(body, dict):
        raise AgentAPIError(400, "invalid-json", "the body must be a JSON object")
    unknown = sorted(set(body) - {"tag", "hardware_uuid"})
    if unknown:
        raise AgentAPIError(400, "unknown-field", f"unknown field(s): {', '.join(unknown)}")
    try:
        tag = base64.b64decode(body.get("tag", ""), validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise AgentAPIError(400, "invalid-tag", "tag must be a base64 string") from None
    if len(tag) != ASSET_TAG_NV_SIZE:
        raise AgentAPIError(
            400,
            "invalid-tag",
            f"tag must decode to the {ASSET_TAG_NV_SIZE}-byte SHA-384 of a tag certificate",
        )
    hardware_uuid = body.get("hardware_uuid")
    if hardware_uuid is not None and not isinstance(hardware_uuid, str):
        raise AgentAPIError(400, "invalid-hardware-uuid", "hardware_uuid must be a string")
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
        if isinstance(exc, AgentAPIError):  # application integrity's refusals included
            return _error(exc.status, exc.code, exc.message)
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
                raise AgentAPIError(
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
