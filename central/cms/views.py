"""/cms/v1: the public CA certificates and CSR signing for enrolled hosts and services."""

from __future__ import annotations

from flask import Blueprint
from secl.central.versions import add_version_route

bp = Blueprint("cms", __name__, url_prefix="/cms/v1")
add_version_route(bp, "CMS", "v1")
