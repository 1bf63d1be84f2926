"""The central server: one Flask application hosting every central API of secl.

``create_app`` wires configuration, store, token service and the blueprints; nothing happens at import
time and nothing lives at module level, so several apps (tests) or instances (production) never share
state except through the database and the configured key files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify
from secl.central.config import CentralConfig, ConfigError, load_config
from secl.central.errors import register_error_handlers
from secl.central.keyfiles import KeyFiles
from secl.central.openapi import build_openapi
from secl.central.store import db as store_db
from secl.central.store.migrate import current_revision, head_revision


class NotSetUp(Exception):
    """The central cannot start: its database or keys are missing; the message says which command fixes it."""


def create_app(
    config: CentralConfig | Mapping[str, Any] | None = None, *, check_schema: bool = True
) -> Flask:
    if not isinstance(config, CentralConfig):
        config = load_config(overrides=config)
    logging.getLogger("secl").setLevel(config.log_level.upper())
    app = Flask("secl.central", static_folder=None)  # an API: no static files
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["secl.config"] = config
    app.extensions["secl.keys"] = KeyFiles(config.keys_dir)

    if not config.database_url and not (config.state_dir / "central.db").exists():
        # Opening it would create an empty file and hide the real problem behind a schema error.
        raise NotSetUp(f"{config.state_dir / 'central.db'} does not exist: run `secl-central setup`")
    database = store_db.Database(config.sqlalchemy_url)
    if check_schema:
        _require_current_schema(database)
    store_db.init_app(app, database)
    app.extensions["secl.tokens"] = _token_service(config)
    app.extensions["secl.enrollment-principals"] = _enrollment_principal

    register_error_handlers(app)
    _register_blueprints(app)
    _register_openapi(app)
    app.after_request(_security_headers)
    return app


def _require_current_schema(database: store_db.Database) -> None:
    current, head = current_revision(database.engine), head_revision()
    if current != head:
        raise NotSetUp(
            f"the database at {database.engine.url.render_as_string(hide_password=True)} is at schema "
            f"revision {current or 'none'}, this release needs {head}: run `secl-central db upgrade`"
        )


def _token_service(config: CentralConfig) -> Any:
    from secl.central.aas.tokens import TokenService

    path = KeyFiles(config.keys_dir).token_signing_key
    if not path.exists():
        raise NotSetUp(f"{path} does not exist: run `secl-central setup`")
    return TokenService.from_file(path, config.token_ttl_seconds)


def _enrollment_principal(token: str) -> Any:
    from secl.central.cms.enrollment import principal_for
    from secl.central.store.db import db

    return principal_for(db(), token)


def _register_blueprints(app: Flask) -> None:
    from secl.central.aas.views import bp as aas
    from secl.central.cms.views import bp as cms
    from secl.central.hvs.views import bp as hvs
    from secl.central.versions import area_blueprint

    app.register_blueprint(aas)
    app.register_blueprint(cms)
    app.register_blueprint(hvs)
    for name, prefix, api in (("kbs", "/kbs/v1", "v1"), ("wls", "/wls/v2", "v2")):
        app.register_blueprint(area_blueprint(name, prefix, api))


def _register_openapi(app: Flask) -> None:
    document: dict[str, Any] = {}

    @app.get("/openapi.json")
    def openapi() -> Response:
        if not document:
            document.update(build_openapi(app))
        return jsonify(document)


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


__all__ = ["CentralConfig", "ConfigError", "NotSetUp", "create_app", "load_config"]
