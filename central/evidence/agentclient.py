"""The central's side of the trust-agent API: HTTPS with mutual TLS, and every failure named.

A host is reached through its SecL connection string ``intel:https://<host>:<port>``. The central presents
its own TLS certificate (``keys/tls.pem``, which has the clientAuth EKU) as the client certificate and
trusts only its root CA for the agent's certificate (which the agent got at setup through an enrollment
token), so neither side talks to anything the central did not certify.

Failures become :class:`AgentError` subclasses, each carrying the host status it implies:

- :class:`AgentUnreachable` (``unreachable``): no connection, a timeout, a reset before TLS;
- :class:`AgentUntrustedTLS` (``untrusted-tls``): the agent's certificate does not chain to our root CA or
  does not name the host of the connection string;
- :class:`AgentUnauthorized` (``unauthorized``): the agent refused our client certificate (a TLS alert) or
  answered 401/403;
- :class:`AgentBadResponse` (``error``): an HTTP error status, or a body that is not the JSON expected.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import pybase64
import requests

from secl.central.evidence.hostinfo import ClaimedHostInfo
from secl.central.keyfiles import KeyFiles
from secl.core.assettag import ASSET_TAG_NV_SIZE

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0  # a quote over every PCR of several banks takes a slow TPM a few seconds
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # an event log with IMA entries can be a few megabytes


class AgentError(Exception):
    """The agent could not be asked, or its answer is unusable; ``host_status`` is what the host becomes."""

    code = "agent-error"
    host_status = "error"
    agent_code: str | None = None  # the agent's own error code, when it answered with one

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class AgentUnreachable(AgentError):
    code, host_status = "agent-unreachable", "unreachable"


class AgentUntrustedTLS(AgentError):
    code, host_status = "agent-tls-untrusted", "untrusted-tls"


class AgentUnauthorized(AgentError):
    code, host_status = "agent-unauthorized", "unauthorized"


class AgentBadResponse(AgentError):
    code, host_status = "agent-bad-response", "error"


class ConnectionStringError(AgentError):
    code, host_status = "connection-string-invalid", "error"


def agent_base_url(connection_string: str) -> str:
    """``intel:https://host:port[/path]`` -> ``https://host:port[/path]`` (no trailing slash)."""
    vendor, sep, url = connection_string.partition(":")
    if not sep or vendor.lower() != "intel":
        raise ConnectionStringError(f"{connection_string!r} is not intel:https://<host>[:<port>]")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises for a bad port)
    except ValueError as exc:
        raise ConnectionStringError(f"{connection_string!r}: {exc}") from None
    if parts.scheme != "https" or not parts.hostname:
        raise ConnectionStringError(f"{connection_string!r} is not intel:https://<host>[:<port>]")
    return url.rstrip("/")


@dataclass(frozen=True)
class QuoteResponse:
    """The agent's ``POST /v2/tpm/quote`` answer, decoded but not verified."""

    attest: bytes
    signature: bytes
    pcrs: Any  # {"sha256": {"0": hex}}: pcr_banks_from_json reads it
    event_log: bytes | None
    event_log_error: str | None
    raw: dict[str, Any]
    # The asset-tag digest the agent read from NV and bound into the quote (SecL's ``asset_tag``); None
    # when it reports no tag. Unverified: the quote's qualifying data is what vouches for it.
    asset_tag: bytes | None = None


def decode_quote_response(body: dict[str, Any]) -> QuoteResponse:
    """The agent's ``POST /v2/tpm/quote`` JSON object, its base64 fields decoded (nothing verified)."""
    try:
        attest = _strict_base64(body["attest"])
        signature = _strict_base64(body["signature"])
        log = body.get("event_log")
        event_log = None if log is None else _strict_base64(log)
    except (KeyError, TypeError, ValueError) as exc:
        raise AgentBadResponse(
            f"POST /v2/tpm/quote: attest, signature or event_log missing or not base64 ({exc})"
        ) from None
    error = body.get("event_log_error")
    return QuoteResponse(
        attest,
        signature,
        body.get("pcrs"),
        event_log,
        error if isinstance(error, str) else None,
        body,
        _asset_tag(body),
    )


def _strict_base64(text: object) -> bytes:
    """Standard base64, nothing else in it (binascii.Error, a ValueError, otherwise). pybase64 decodes with
    SIMD: the standard library takes about a quarter of a millisecond for a ~60 KB event log, per report."""
    if not isinstance(text, str | bytes):
        raise TypeError(f"expected base64 text, got {type(text).__name__}")
    return pybase64.b64decode(text, validate=True)


def _asset_tag(body: dict[str, Any]) -> bytes | None:
    provisioned, encoded = body.get("is_tag_provisioned"), body.get("asset_tag")
    if provisioned is not None and not isinstance(provisioned, bool):
        raise AgentBadResponse("POST /v2/tpm/quote: is_tag_provisioned is not a boolean")
    if encoded is None:
        if provisioned:
            raise AgentBadResponse("POST /v2/tpm/quote: is_tag_provisioned without an asset_tag")
        return None
    try:
        tag = _strict_base64(encoded)
    except (TypeError, ValueError):
        raise AgentBadResponse("POST /v2/tpm/quote: asset_tag is not base64") from None
    if len(tag) != ASSET_TAG_NV_SIZE or not any(tag) or provisioned is False:
        raise AgentBadResponse(
            f"POST /v2/tpm/quote: asset_tag must be a {ASSET_TAG_NV_SIZE}-byte digest (not zeros) and "
            "agree with is_tag_provisioned"
        )
    return tag


class AgentClient:
    """One trust agent, reached over mTLS with the central's certificate."""

    def __init__(
        self,
        connection_string: str,
        keys: KeyFiles,
        *,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
    ) -> None:
        self.connection_string = connection_string
        self.base_url = agent_base_url(connection_string)
        self._cert = (str(keys.tls_cert), str(keys.tls_key))
        self._verify = str(keys.root_ca_cert)
        self._timeout = timeout
        # One connection for the calls of one attestation (host info, AIK, quote): a single mTLS
        # handshake instead of three. Closed by close() or the ``with`` block.
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- the API -----------------------------------------------------------------------------------------

    def host_info(self) -> ClaimedHostInfo:
        """``GET /v2/host``: what the host says about itself, unverified."""
        return ClaimedHostInfo(self._object(self._call("GET", "/v2/host"), "GET /v2/host"))

    def aik(self) -> dict[str, Any]:
        body = self._object(self._call("GET", "/v2/aik"), "GET /v2/aik")
        for key in ("aik", "aik_certificate"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise AgentBadResponse(f"GET /v2/aik: {key} is not a string")
        return body

    def quote(self, nonce: bytes, pcrs: list[int], banks: list[str]) -> QuoteResponse:
        request = {"nonce": base64.b64encode(nonce).decode(), "pcrs": pcrs, "pcrbanks": banks}
        body = self._object(self._call("POST", "/v2/tpm/quote", json=request), "POST /v2/tpm/quote")
        return decode_quote_response(body)

    def write_tag(self, digest: bytes, hardware_uuid: str) -> dict[str, Any]:
        """``POST /v2/tag``: the agent writes ``digest`` (SHA-384 of a tag certificate) into its TPM's
        asset-tag NV index; it refuses a tag for another ``hardware_uuid``."""
        request = {"tag": base64.b64encode(digest).decode(), "hardware_uuid": hardware_uuid}
        return self._object(self._call("POST", "/v2/tag", json=request), "POST /v2/tag")

    def application_measurement(self, manifest_xml: str) -> str:
        """``POST /v2/host/application-measurement``: the agent measures a SecL Manifest XML now and
        answers the Measurement XML (unverified: the host's own word, as for SecL)."""
        response = self._call(
            "POST",
            "/v2/host/application-measurement",
            data=manifest_xml.encode(),
            headers={"Content-Type": "application/xml"},
        )
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError:
            raise AgentBadResponse("POST /v2/host/application-measurement: the answer is not UTF-8") from None

    def deploy_manifest(self, manifest_xml: str) -> dict[str, Any]:
        """``POST /v2/deploy/manifest``: the agent stores a Manifest XML for its initrd's next boot."""
        response = self._call(
            "POST",
            "/v2/deploy/manifest",
            data=manifest_xml.encode(),
            headers={"Content-Type": "application/xml"},
        )
        return self._object(response, "POST /v2/deploy/manifest")

    # --- transport ---------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self.base_url + path
        try:
            response = self._session.request(
                method,
                url,
                cert=self._cert,
                verify=self._verify,
                timeout=self._timeout,
                stream=True,
                allow_redirects=False,
                **kwargs,
            )
        except requests.exceptions.SSLError as exc:
            raise _tls_error(url, exc) from None
        except requests.exceptions.Timeout as exc:
            raise AgentUnreachable(f"{url}: timed out ({exc})") from None
        except requests.exceptions.ConnectionError as exc:
            text = str(exc)
            if "alert" in text.lower() or "certificate" in text.lower():
                raise AgentUnauthorized(
                    f"{url}: the agent refused the central's certificate ({text})"
                ) from None
            raise AgentUnreachable(f"{url}: cannot connect ({text})") from None
        except requests.exceptions.RequestException as exc:
            raise AgentUnreachable(f"{url}: {exc}") from None
        with response:
            content = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
        if len(content) > MAX_RESPONSE_BYTES:
            raise AgentBadResponse(f"{method} {path}: the answer is larger than {MAX_RESPONSE_BYTES} bytes")
        response._content = content  # read once, bounded
        if response.status_code in (401, 403):
            raise AgentUnauthorized(f"{method} {path}: the agent answered {response.status_code}")
        if not 200 <= response.status_code < 300:
            refused = AgentBadResponse(
                f"{method} {path}: the agent answered {response.status_code}: {_error_text(response)}",
                code="agent-error-status",
            )
            refused.agent_code = _error_code(response)
            raise refused
        return response

    @staticmethod
    def _object(response: requests.Response, what: str) -> dict[str, Any]:
        return decode_json_object(response.content, what)


def decode_json_object(content: bytes, what: str) -> dict[str, Any]:
    """An agent's answer as a JSON object, or :class:`AgentBadResponse` saying what it was not."""
    try:
        body = orjson.loads(content)
    except ValueError:
        raise AgentBadResponse(f"{what}: the answer is not JSON") from None
    if not isinstance(body, dict):
        raise AgentBadResponse(f"{what}: the answer is not a JSON object")
    return body


def _tls_error(url: str, exc: Exception) -> AgentError:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "hostname" in text.lower():
        return AgentUntrustedTLS(
            f"{url}: the agent's TLS certificate is not issued by the central's CA for this host name ({text})"
        )
    return AgentUnauthorized(f"{url}: TLS refused ({text})")


def _error_code(response: requests.Response) -> str | None:
    """The agent's own error code (its JSON ``code``), if it sent one."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) and len(code) <= 64 else None


def _error_text(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "code" in body:
        return f"{body.get('code')}: {str(body.get('message', ''))[:200]}"
    return str(body)[:200]
