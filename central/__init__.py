"""The central server: one Flask application hosting every central API of secl.

``create_app`` builds the service context (:mod:`secl.central.context`: configuration, store, keys, token
service, memos), hands it to a Flask application and registers every area's blueprint; nothing happens at
import time and nothing lives at module level, so several apps (tests) or instances (production) never
share state except through the database and the configured key files.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify

from secl.central.config import CentralConfig, ConfigError, load_config
from secl.central.context import NotSetUp, install, open_services
from secl.central.endpoints import register_request_state
from secl.central.errors import register_error_handlers
from secl.central.openapi import build_openapi


def create_app(
    config: CentralConfig | Mapping[str, Any] | None = None, *, check_schema: bool = True
) -> Flask:
    if not isinstance(config, CentralConfig):
        config = load_config(overrides=config)
    logging.getLogger("secl").setLevel(config.log_level.upper())
    services = open_services(config, check_schema=check_schema)
    app = Flask("secl.central", static_folder=None)  # an API: no static files
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    install(app, services)
    register_request_state(app)
    register_error_handlers(app)
    _register_blueprints(app)
    _register_openapi(app)
    app.after_request(_security_headers)
    return app


def _register_blueprints(app: Flask) -> None:
    from secl.central.aas.views import bp as aas
    from secl.central.cms.views import bp as cms
    from secl.central.endorsements.views import bp as endorsements
    from secl.central.flavorgroups.views import bp as flavorgroups
    from secl.central.flavors.views import bp as flavors
    from secl.central.flavortemplates.views import bp as flavortemplates
    from secl.central.hosts.views import bp as hosts
    from secl.central.kbs.views import bp as kbs
    from secl.central.privacyca.views import bp as privacyca
    from secl.central.reports.views import bp as reports
    from secl.central.tags.views import bp as tags
    from secl.central.versions import area_blueprint
    from secl.central.wls.views import bp as wls

    app.register_blueprint(aas)
    app.register_blueprint(cms)
    # /hvs/v2, one blueprint per area.
    for area in (privacyca, endorsements, hosts, flavorgroups, flavors, flavortemplates, reports, tags):
        app.register_blueprint(area)
    app.register_blueprint(kbs)
    app.register_blueprint(wls)
    app.register_blueprint(area_blueprint("hvs", "/hvs/v2", "v2"))


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
