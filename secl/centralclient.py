"""A small HTTPS client for the central, and the login session the ``secl`` admin commands and the image
owner's ``secl-wpm`` share (one session, one way to verify the central: neither tool keeps its own).

``secl login`` saves a session (:class:`Session`) in ``$XDG_CONFIG_HOME/secl/session.json`` (default
``~/.config/secl``), a file only its owner can read: it holds a bearer token, never a password. Every later
command builds a :class:`CentralClient` from it, which verifies the central's TLS certificate against the CA
given at login (a CA file, or the root CA pinned by its SHA-384 fingerprint) and turns the central's JSON
errors (``{code, message}``) into one :class:`CentralError` whose text is the server's message and code.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

SESSION_FILE = "session.json"
CA_CERTIFICATES_PATH = "/cms/v1/ca-certificates"
TIMEOUT_SECONDS = 30.0


class CentralError(Exception):
    """A request to the central failed; the message is one line a user can act on."""


class NotLoggedIn(CentralError):
    """There is no usable session: the user has to run ``secl login``."""


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "secl"


def session_path() -> Path:
    return config_dir() / SESSION_FILE


@dataclass(frozen=True)
class Session:
    url: str
    token: str
    expires_at: str  # ISO 8601, as the central returned it
    username: str
    ca_file: str | None = None  # absolute path of the CA bundle given with --ca-file
    ca_pem: str | None = None  # the root CA pinned with --ca-fingerprint

    def expiry(self) -> datetime | None:
        try:
            moment = datetime.fromisoformat(self.expires_at)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def expired(self, now: datetime | None = None) -> bool:
        expiry = self.expiry()
        return expiry is None or expiry <= (now or datetime.now(UTC))


def save_session(session: Session) -> Path:
    """Write the session atomically: a 0600 temporary file in a 0700 directory, renamed over the old one."""
    path = session_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    data = json.dumps({k: v for k, v in asdict(session).items() if v is not None}, indent=2).encode() + b"\n"
    tmp = path.with_name(f".{SESSION_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already existed
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def load_session() -> Session:
    path = session_path()
    try:
        raw = json.loads(path.read_text())
        session = Session(
            url=raw["url"],
            token=raw["token"],
            expires_at=raw["expires_at"],
            username=raw["username"],
            ca_file=raw.get("ca_file"),
            ca_pem=raw.get("ca_pem"),
        )
    except FileNotFoundError:
        raise NotLoggedIn("not logged in: run `secl login --url https://CENTRAL:8443` first") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotLoggedIn(f"{path} is not a usable session ({exc}): run `secl login` again") from None
    if session.expired():
        raise NotLoggedIn(
            f"the session of {session.username} at {session.url} expired at {session.expires_at}: "
            "run `secl login` again"
        )
    return session


def remove_session() -> bool:
    try:
        session_path().unlink()
    except FileNotFoundError:
        return False
    return True


def normalize_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise CentralError(f"{url!r} is not an https:// URL of the central (e.g. https://central:8443)")
    if parts.query or parts.fragment or parts.path.strip("/"):
        raise CentralError(f"{url!r}: give only the scheme, host and port of the central")
    return f"https://{parts.netloc}"


def normalize_fingerprint(fingerprint: str) -> str:
    value = fingerprint.strip().lower().replace(":", "").replace(" ", "")
    if len(value) != 96 or any(c not in "0123456789abcdef" for c in value):
        raise CentralError("the CA fingerprint must be a SHA-384 digest: 96 hex digits (colons allowed)")
    return value


def pinned_root_ca(pem: str, fingerprint: str) -> str:
    """From a PEM bundle, the CA certificate whose SHA-384 fingerprint is the given one, as PEM.

    The fingerprint is computed here over each certificate's DER, never taken from what the server says, and
    compared in constant time.
    """
    wanted = normalize_fingerprint(fingerprint).encode()
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise CentralError("the central's CA certificates are not a PEM bundle") from None
    found = None
    for certificate in certificates:
        if hmac.compare_digest(certificate.fingerprint(hashes.SHA384()).hex().encode(), wanted):
            found = certificate
    if found is None:
        raise CentralError(
            "no CA certificate of the central has the SHA-384 fingerprint given with --ca-fingerprint: "
            "refusing to trust it (compare with what `secl-central setup` printed)"
        )
    try:
        is_ca = found.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CentralError("the certificate with the given fingerprint is not a CA certificate")
    return found.public_bytes(serialization.Encoding.PEM).decode()


def fetch_ca_certificates(url: str) -> str:
    """``GET /cms/v1/ca-certificates`` WITHOUT verifying TLS: only for pinning, which checks the answer."""
    import urllib3

    with requests.Session() as http, _quiet_insecure_warning(urllib3):
        body = _send(http, "GET", url + CA_CERTIFICATES_PATH, verify=False)
    pem = _pem_bundle(body)
    if pem is None:
        raise CentralError(f"{url}{CA_CERTIFICATES_PATH} did not answer with the central's CA certificates")
    return pem


def _pem_bundle(body: Any) -> str | None:
    """The PEM bundle of a ``/cms/v1/ca-certificates`` answer: ``pem`` (a bundle), or ``certificates`` as a
    bundle or as a list of ``{pem, ...}`` objects. Its claimed fingerprints are ignored: we compute our own."""
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("pem"), str):
        return body["pem"]
    certificates = body.get("certificates")
    if isinstance(certificates, str):
        return certificates
    if isinstance(certificates, list) and all(
        isinstance(c, dict) and isinstance(c.get("pem"), str) for c in certificates
    ):
        return "".join(c["pem"] for c in certificates) or None
    return None


@contextlib.contextmanager
def _quiet_insecure_warning(urllib3: Any) -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        yield


class CentralClient:
    """Requests to one central over verified TLS; use as a context manager (it may hold a temporary file)."""

    def __init__(
        self,
        url: str,
        *,
        ca_file: str | None = None,
        ca_pem: str | None = None,
        token: str | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._http = requests.Session()
        self._tmp: Path | None = None
        if ca_pem:
            # requests verifies against files only; a private temporary file holds the pinned root CA.
            fd, name = tempfile.mkstemp(prefix="secl-ca-", suffix=".pem")
            with os.fdopen(fd, "w") as f:
                f.write(ca_pem)
            self._tmp = Path(name)
            self.verify: str | bool = name
        elif ca_file:
            if not Path(ca_file).is_file():
                raise CentralError(f"the CA file {ca_file} does not exist: run `secl login` again")
            self.verify = ca_file
        else:
            self.verify = True  # the system's trust store

    @classmethod
    def from_session(cls, session: Session | None = None) -> CentralClient:
        session = session or load_session()
        return cls(session.url, ca_file=session.ca_file, ca_pem=session.ca_pem, token=session.token)

    def __enter__(self) -> CentralClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return _send(
            self._http,
            method,
            self.url + path,
            verify=self.verify,
            json_body=json_body,
            data=data,
            params=params,
            headers=headers,
            timeout=self.timeout,
            logged_in=self.token is not None,
        )

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None} or None)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json_body=body)

    def post_data(self, path: str, data: bytes, content_type: str) -> Any:
        """POST a body that is not JSON (a PEM public key for the key broker's envelope transfer)."""
        return self.request("POST", path, data=data, content_type=content_type)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json_body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def segment(value: str) -> str:
    """A path segment built from user input, percent-encoded so it cannot change the route."""
    return quote(value, safe="")


def _send(
    http: requests.Session,
    method: str,
    url: str,
    *,
    verify: str | bool,
    json_body: Any = None,
    data: bytes | None = None,
    params: dict | None = None,
    headers: dict | None = None,
    timeout: float = TIMEOUT_SECONDS,
    logged_in: bool = False,
) -> Any:
    try:
        response = http.request(
            method,
            url,
            json=json_body,
            data=data,
            params=params,
            headers=headers,
            verify=verify,
            timeout=timeout,
        )
    except requests.exceptions.SSLError as exc:
        trusted = (
            "the system's trusted CAs (give `secl login` --ca-file or --ca-fingerprint)"
            if verify is True
            else "the CA given at login (--ca-file / --ca-fingerprint)"
        )
        raise CentralError(
            f"TLS verification of {_origin(url)} failed: its certificate is not signed by {trusted} or is "
            f"not valid for this host name ({_reason(exc)})"
        ) from None
    except requests.exceptions.Timeout:
        raise CentralError(f"{_origin(url)} did not answer within {timeout:g} s") from None
    except requests.exceptions.ConnectionError as exc:
        raise CentralError(f"cannot connect to {_origin(url)}: {_reason(exc)}") from None
    except requests.exceptions.RequestException as exc:
        raise CentralError(f"request to {_origin(url)} failed: {exc}") from None
    if response.ok and (response.status_code == 204 or not response.content):
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.ok:
        if body is None:
            raise CentralError(f"{method} {url} answered {response.status_code} without a JSON body")
        return body
    raise CentralError(_error_message(response, body, logged_in))


def _error_message(response: requests.Response, body: Any, logged_in: bool) -> str:
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = f"{body['message']} [{body.get('code', response.status_code)}]"
    else:
        message = f"{response.request.method} {response.url}: HTTP {response.status_code} {response.reason}"
    if response.status_code == 401 and logged_in:
        message += "; run `secl login` again"
    return message


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _reason(exc: BaseException) -> str:
    """The innermost cause of a requests/urllib3 error, which names what actually went wrong."""
    seen: set[int] = set()
    while True:
        inner = exc.__cause__ or exc.__context__ or (exc.args[0] if exc.args else None)
        if isinstance(inner, BaseException) and id(inner) not in seen:
            seen.add(id(inner))
            if hasattr(inner, "reason") and isinstance(inner.reason, BaseException):
                inner = inner.reason
            exc = inner
            continue
        return str(exc).strip() or type(exc).__name__
