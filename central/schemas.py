"""Field types shared by the API shapes of every area (pydantic); each area's own shapes are in its
``schemas.py``. They also generate the OpenAPI schemas, so a type here changes every document that uses it.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """A request shape: an unknown member is refused, not ignored (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


FlavorPart = Literal["PLATFORM", "OS", "HOST_UNIQUE", "ASSET_TAG", "SOFTWARE"]

_HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
_GROUP_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError("not a UUID") from None


def _connection_string(value: str) -> str:
    """SecL's trust-agent form ``intel:https://host[:port][/path]`` (no credentials, no query)."""
    scheme, sep, url = value.partition(":")
    if not sep or scheme.lower() != "intel":
        raise ValueError("must be intel:https://<host>[:<port>] (only the intel: vendor is supported)")
    if any(c.isspace() for c in url):
        raise ValueError("must not contain white space")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"the URL is not valid: {exc}") from None
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("the URL after intel: must be https://<host>[:<port>]")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ValueError("the URL must not carry credentials, a query or a fragment")
    if port == 0:
        raise ValueError("the port must be 1-65535")
    return f"intel:{url}"


UUIDStr = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_uuid)]
HostName = Annotated[str, Field(min_length=1, max_length=255, pattern=_HOST_NAME.pattern)]
GroupName = Annotated[str, Field(min_length=1, max_length=255, pattern=_GROUP_NAME)]
ConnectionString = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_connection_string)]
Description = Annotated[str, Field(max_length=4096)]
