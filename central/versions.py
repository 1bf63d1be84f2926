"""``GET /<area>/vN/version`` on every API area: public, so monitoring needs no credentials."""

from __future__ import annotations

from flask import Blueprint
from pydantic import BaseModel

from secl import __version__
from secl.central.endpoints import PUBLIC, endpoint


class VersionOut(BaseModel):
    service: str
    api: str
    version: str


def add_version_route(bp: Blueprint, service: str, api: str) -> None:
    @endpoint(
        bp, "/version", "GET", permission=PUBLIC, response=VersionOut, summary=f"The {service} API version"
    )
    def version() -> VersionOut:
        return VersionOut(service=service, api=api, version=__version__)


def area_blueprint(name: str, prefix: str, api: str) -> Blueprint:
    """A blueprint that only answers an API's version: for an API whose areas have blueprints of their own
    (``/hvs/v2``), or one still to come (``/kbs/v1``, ``/wls/v2``)."""
    bp = Blueprint(name, __name__ + "." + name, url_prefix=prefix)
    add_version_route(bp, name.upper(), api)
    return bp
