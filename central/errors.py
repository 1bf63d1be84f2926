"""The central's one error path: every failure becomes a JSON body with a stable code and a message.

Views raise :class:`APIError` subclasses (or let werkzeug's HTTP exceptions through); they never build
error responses themselves. Anything else that escapes is logged with its traceback and answered with a
generic 500 that leaks nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from secl.core.errors import EvidenceError

log = logging.getLogger("secl.central")


class APIError(Exception):
    status = 400
    code = "bad-request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class ValidationFailed(APIError):
    status, code = 400, "validation-failed"


class Unauthorized(APIError):
    status, code = 401, "unauthorized"


class Forbidden(APIError):
    status, code = 403, "forbidden"


class NotFound(APIError):
    status, code = 404, "not-found"


class Conflict(APIError):
    status, code = 409, "conflict"


class UnsupportedMediaType(APIError):
    status, code = 415, "unsupported-media-type"


class Locked(APIError):
    status, code = 423, "account-locked"


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
    @app.errorhandler(APIError)
    def _api_error(exc: APIError) -> Response:
        response = error_body(exc.status, exc.code, exc.message, exc.details)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="secl"'
        return response

    @app.errorhandler(EvidenceError)
    def _evidence_error(exc: EvidenceError) -> Response:
        return error_body(400, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        response = error_body(exc.code or 500, _http_code(exc), exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_body(500, "internal-error", "internal error; the server log has the details")
