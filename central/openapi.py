"""The OpenAPI 3.1 document, generated from the endpoint declarations (never written by hand)."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from pydantic import TypeAdapter

from secl import __version__
from secl.central.endpoints import EndpointSpec

_CONVERTER = re.compile(r"<(?:[a-z]+:)?([A-Za-z_][A-Za-z0-9_]*)>")
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
}


def endpoint_specs(app: Flask) -> list[tuple[str, EndpointSpec]]:
    """Every declared endpoint with its full URL rule; routes without a declaration are not endpoints."""
    found = []
    for rule in app.url_map.iter_rules():
        spec = getattr(app.view_functions.get(rule.endpoint), "secl_endpoint", None)
        if spec is not None:
            found.append((rule.rule, spec))
    return sorted(found, key=lambda item: (item[0], item[1].method))


def build_openapi(app: Flask) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for rule, spec in endpoint_specs(app):
        path = _CONVERTER.sub(r"{\1}", rule)
        paths.setdefault(path, {})[spec.method.lower()] = _operation(rule, spec, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "secl central", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "enrollmentToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a one-time token from `secl-central create-enrollment-token`",
                },
            },
        },
    }


def _schema(annotation: Any, components: dict[str, Any]) -> dict[str, Any]:
    schema = TypeAdapter(annotation).json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    return schema


def _operation(rule: str, spec: EndpointSpec, components: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": spec.summary,
        "tags": [spec.tag],
        "operationId": f"{spec.tag}_{spec.method.lower()}_{rule}",
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _CONVERTER.findall(rule)
    ]
    if spec.query is not None:
        properties = _schema(spec.query, components).get("properties", {})
        parameters += [
            {"name": n, "in": "query", "required": False, "schema": s} for n, s in properties.items()
        ]
    if parameters:
        operation["parameters"] = parameters
    if spec.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(spec.body, components)}},
        }
    responses: dict[str, Any] = {}
    if spec.response is None:
        responses["204"] = {"description": "done"}
    else:
        responses[str(spec.status)] = {
            "description": "success",
            "content": {"application/json": {"schema": _schema(spec.response, components)}},
        }
    error = {
        "description": "error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    # 401 on every operation: public ones answer it too (a failed login, a bad enrollment token).
    for status in ("400", "401", "404", "409", "413", "415", "423"):
        responses[status] = error
    if not spec.is_public:
        operation["security"] = [{"bearer": []}]
        responses["403"] = error
    elif spec.other_authorization:
        operation["security"] = [{spec.other_authorization: []}]
        responses["403"] = error
    operation["responses"] = responses
    return operation


__all__ = ["build_openapi", "endpoint_specs"]
