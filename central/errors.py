"""The central's errors: one domain family the services raise, and the one place that answers them in HTTP.

Services raise :class:`ServiceError` subclasses, which carry a stable ``code`` (part of the API), a message
and optional details, and know nothing of HTTP: the worker and the CLI call the same services outside any
request. :func:`register_error_handlers` is the one place where an error becomes a status code and a JSON
body ``{"code", "message", "details"?}``; views never build error responses. werkzeug's own HTTP errors
(an unknown URL, a wrong method, a body too large) get the same body. Anything else that escapes is logged
with its traceback and answered with a generic 500 that leaks nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from secl.core.errors import EvidenceError

log = logging.getLogger("secl.central")


class ServiceError(Exception):
    """A refusal the caller can act on; ``code`` names it for programs, ``message`` for people."""

    code = "bad-request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class Invalid(ServiceError):
    """The input breaks a rule of the API (a malformed field, an unknown name)."""

    code = "validation-failed"


class Unauthorized(ServiceError):
    """The caller did not prove who it is (no token, an expired token, a wrong password)."""

    code = "unauthorized"


class Forbidden(ServiceError):
    """The caller is known but may not do this."""

    code = "forbidden"


class NotFound(ServiceError):
    code = "not-found"


class Conflict(ServiceError):
    """The request is well formed but the state of things refuses it (a duplicate, evidence that fails)."""

    code = "conflict"


class UnsupportedMediaType(ServiceError):
    code = "unsupported-media-type"


class Unavailable(ServiceError):
    """Something the operation needs is down (a KMIP server): nothing was changed, try again later."""

    code = "unavailable"


class Locked(ServiceError):
    """The account is locked after repeated failed logins."""

    code = "account-locked"


#: The HTTP status of each kind of error; a subclass answers with its nearest listed ancestor's.
HTTP_STATUS: dict[type[ServiceError], int] = {
    ServiceError: 400,
    Invalid: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    UnsupportedMediaType: 415,
    Locked: 423,
    Unavailable: 503,
}


def http_status(error: ServiceError) -> int:
    for kind in type(error).__mro__:
        status = HTTP_STATUS.get(kind)
        if status is not None:
            return status
    return 400  # unreachable: ServiceError itself is listed


def error_body(status: int, code: str, message: str, details: Any = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    response = jsonify(body)
    response.status_code = status
    return response


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "-").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Response:
        status = http_status(exc)
        response = error_body(status, exc.code, exc.message, exc.details)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="secl"'
        return response

    @app.errorhandler(EvidenceError)
    def _evidence_error(exc: EvidenceError) -> Response:
        return error_body(400, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        response = error_body(exc.code or 500, _http_code(exc), exc.description or exc.name)
        valid_methods = getattr(exc, "valid_methods", None)  # only MethodNotAllowed has them
        if exc.code == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_body(500, "internal-error", "internal error; the server log has the details")
