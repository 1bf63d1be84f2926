"""Declaring an endpoint: its route, the permission it needs, and the shapes of what goes in and out; and
what a view reaches while it runs: the caller, the service context and the request's database session.

One decorator does what every view would otherwise repeat: authorization first (so an unauthenticated
caller learns nothing, not even whether a body was valid), then JSON body and query validation with
pydantic, then rendering of the result. The same declaration feeds the OpenAPI document
(:mod:`secl.central.openapi`) and the test that walks every route to prove it rejects bad tokens.

``permission`` has no default: a route is public only if it says ``permission=PUBLIC``. Several blueprints
may share one API's URL prefix (``/hvs/v2`` has one per area); the OpenAPI tag is the API's name, taken from
the prefix, so the document groups operations by API whichever blueprint declares them.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.auth import Principal, authenticate
from secl.central.cms.enrollment import principal_for
from secl.central.cms.hostidentity import principal_for_assertion
from secl.central.context import CentralServices, services_of
from secl.central.errors import Forbidden, Invalid, UnsupportedMediaType


class _Public:
    def __repr__(self) -> str:
        return "PUBLIC"


class _Authenticated:
    def __repr__(self) -> str:
        return "AUTHENTICATED"


PUBLIC = _Public()
#: Any valid token, whatever its permissions (a user changing their own password).
AUTHENTICATED = _Authenticated()


@dataclass(frozen=True)
class EndpointSpec:
    rule: str
    method: str
    permission: str | _Public | _Authenticated
    summary: str
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any  # a pydantic model, list[model], or None for 204
    status: int
    tag: str
    # A PUBLIC route that its service authorizes another way (an enrollment token): the OpenAPI
    # document names the scheme and its 401/403 answers.
    other_authorization: str | None = None

    @property
    def is_public(self) -> bool:
        return isinstance(self.permission, _Public)


def endpoint(
    bp: Blueprint,
    rule: str,
    method: str,
    *,
    permission: str | _Public | _Authenticated,
    summary: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    other_authorization: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if not isinstance(permission, str | _Public | _Authenticated):
        raise TypeError("permission must be a 'service:resource:action' string, AUTHENTICATED or PUBLIC")
    spec = EndpointSpec(
        rule,
        method.upper(),
        permission,
        summary,
        body,
        query,
        response,
        status,
        _api(bp),
        other_authorization,
    )
    adapter = TypeAdapter(response) if response is not None else None

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def view(**path_args: Any) -> Any:
            if isinstance(spec.permission, _Authenticated):
                g.principal = _authenticate()
            elif isinstance(spec.permission, str):
                g.principal = _authorize(spec.permission)
            for name, value in path_args.items():
                _refuse_nul(value, f"path parameter {name}")
            kwargs: dict[str, Any] = dict(path_args)
            if spec.body is not None:
                kwargs["body"] = _parse_body(spec.body)
            if spec.query is not None:
                kwargs["query"] = _parse_query(spec.query)
            result = fn(**kwargs)
            return _render(result, adapter, spec.status)

        view.secl_endpoint = spec  # type: ignore[attr-defined]
        bp.add_url_rule(rule, endpoint=fn.__name__, view_func=view, methods=[spec.method])
        return view

    return decorate


def _api(bp: Blueprint) -> str:
    """The API a blueprint serves, named by its URL prefix: ``/hvs/v2`` is ``hvs``."""
    return (bp.url_prefix or "").strip("/").split("/")[0] or bp.name


def current_principal() -> Principal:
    principal: Principal = g.principal
    return principal


def services() -> CentralServices:
    """The service context of the application serving this request."""
    return services_of(current_app)


def db() -> Session:
    """The request's session, opened on first use and closed when the request ends."""
    if "db_session" not in g:
        g.db_session = services().database.sessions()
    session: Session = g.db_session
    return session


def close_request_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def _note_caller_address() -> None:
    g.caller_address = audit.caller_address.set(request.remote_addr or "")


def _forget_caller_address(_exc: BaseException | None) -> None:
    noted = g.pop("caller_address", None)
    if noted is not None:
        audit.caller_address.reset(noted)


def register_request_state(app: Flask) -> None:
    """Per request: the caller's address for the audit log (before any blueprint's own hooks), and the
    database session, closed when the request ends."""
    app.before_request(_note_caller_address)
    app.teardown_request(_forget_caller_address)
    app.teardown_appcontext(close_request_session)


def _authenticate() -> Principal:
    return authenticate(
        request.headers.get("Authorization"), services().tokens, _enrolled_host, _asserted_host
    )


def _asserted_host(token: str) -> Principal:
    context = services()
    return principal_for_assertion(
        db(), token, root_ca=context.keys.root_ca_certificate, audience=context.config.hostname
    )


def _enrolled_host(token: str) -> Principal:
    return principal_for(db(), token)


def _authorize(permission: str) -> Principal:
    principal = _authenticate()
    if not principal.allows(permission):
        raise Forbidden(f"this operation needs the permission {permission}", code="permission-denied")
    return principal


def _parse_body(model: type[BaseModel]) -> BaseModel:
    if not request.is_json:
        raise UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)")
    try:
        raw = request.get_json(silent=True)
        if raw is None:
            raise Invalid("the request body is not valid JSON", code="invalid-json")
        _refuse_nul(raw, "body")
    except RecursionError:  # json and the NUL walk recurse: a body nested a thousand deep is no request
        raise Invalid("the request body is nested too deeply", code="invalid-json") from None
    return _validate(model, raw, "body")


def _is_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    return typing.get_origin(annotation) is list


def _parse_query(model: type[BaseModel]) -> BaseModel:
    raw = request.args.to_dict(flat=False)
    lists = {name for name, info in model.model_fields.items() if _is_list(info.annotation)}
    repeated = sorted(key for key, values in raw.items() if len(values) > 1 and key not in lists)
    if repeated:
        # Silently taking the first of several values would let a proxy and the app disagree on a filter.
        # A list field (?tag=a&tag=b) takes every value.
        raise Invalid(f"invalid query: {repeated[0]} is given more than once")
    values = {key: values if key in lists else values[0] for key, values in raw.items()}
    _refuse_nul(values, "query")
    return _validate(model, values, "query")


def _refuse_nul(value: Any, where: str) -> None:
    """Refuse NUL characters anywhere in the input: PostgreSQL cannot store them in text, SQLite can, and
    the two backends must answer alike (a 400, not a 500 on one and a 200 on the other)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise Invalid(f"invalid {where}: NUL characters are not allowed")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key, where)
            _refuse_nul(item, where)
    elif isinstance(value, list):
        for item in value:
            _refuse_nul(item, where)


def _validate(model: type[BaseModel], raw: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(raw)
    except PydanticValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or where, "problem": err["msg"]}
            for err in exc.errors()
        ]
        first = problems[0]
        raise Invalid(f"invalid {where}: {first['field']}: {first['problem']}", details=problems) from None


def _render(result: Any, adapter: TypeAdapter | None, status: int) -> Any:
    if isinstance(result, Response):
        return result
    if result is None or adapter is None:
        return Response(status=204)
    return jsonify(adapter.dump_python(result, mode="json")), status
