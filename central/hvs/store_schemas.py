"""Request and response shapes of /hvs/v2 hosts, flavors and flavor groups (SecL's JSON names)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, model_validator
from secl.central.hvs.schemas import Strict

FlavorPart = Literal["PLATFORM", "OS", "HOST_UNIQUE", "ASSET_TAG", "SOFTWARE"]
MatchType = Literal["ANY_OF", "ALL_OF", "LATEST"]
Required = Literal["REQUIRED", "REQUIRED_IF_DEFINED"]

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
# An asset tag to select hosts by, ``name=value`` (tag names never contain "=").
TagFilter = Annotated[str, Field(min_length=3, max_length=512, pattern=r"^[^=]+=[\s\S]+$")]
Description = Annotated[str, Field(max_length=4096)]


# --- hosts ------------------------------------------------------------------------------------------------


class HostCreate(Strict):
    host_name: HostName
    connection_string: ConnectionString
    description: Description = ""
    flavorgroup_names: list[GroupName] = Field(default_factory=lambda: ["automatic"], max_length=100)


class HostUpdate(Strict):
    host_name: HostName | None = None
    connection_string: ConnectionString | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _something(self) -> HostUpdate:
        if self.host_name is None and self.connection_string is None and self.description is None:
            raise ValueError("give at least one of host_name, connection_string, description")
        return self


class HostOut(BaseModel):
    id: str
    host_name: str
    connection_string: str
    description: str
    hardware_uuid: str | None
    status: str
    flavorgroup_names: list[str]
    created_at: datetime
    updated_at: datetime
    # From the host's newest report while it is unexpired: trusted or not (null: no such report), and
    # the asset tags it verified.
    trusted: bool | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class HostCollection(BaseModel):
    hosts: list[HostOut]


class HostSearch(Strict):
    id: UUIDStr | None = None
    nameEqualTo: Annotated[str, Field(max_length=255)] | None = None
    nameContains: Annotated[str, Field(max_length=255)] | None = None
    hostHardwareId: UUIDStr | None = None
    # Repeatable: hosts whose newest unexpired report verified every one of these tags.
    tag: Annotated[list[TagFilter], Field(max_length=16)] = Field(default_factory=list)
    # true: the newest report is unexpired and trusted; false: anything else.
    trusted: bool | None = None


class HostFlavorgroupCreate(Strict):
    flavorgroup_id: UUIDStr


class HostFlavorgroupOut(BaseModel):
    host_id: str
    flavorgroup_id: str


# --- flavor groups ----------------------------------------------------------------------------------------


class MatchPolicy(Strict):
    match_type: MatchType
    required: Required


class FlavorMatchPolicy(Strict):
    flavor_part: FlavorPart
    match_policy: MatchPolicy


Policies = Annotated[list[FlavorMatchPolicy], Field(max_length=5)]


class FlavorMatchPolicyCollection(Strict):
    flavor_match_policies: Policies


class FlavorgroupCreate(Strict):
    """SecL wrote the policies inside ``flavor_match_policy_collection``; v4 also flat. Either is taken."""

    name: GroupName
    flavor_match_policy_collection: FlavorMatchPolicyCollection | None = None
    flavor_match_policies: Policies | None = None

    @model_validator(mode="after")
    def _one_form(self) -> FlavorgroupCreate:
        if (self.flavor_match_policy_collection is None) == (self.flavor_match_policies is None):
            raise ValueError("give flavor_match_policy_collection or flavor_match_policies (exactly one)")
        parts = [p.flavor_part for p in self.policies]
        if len(set(parts)) != len(parts):
            raise ValueError("a flavor part has more than one match policy")
        return self

    @property
    def policies(self) -> list[FlavorMatchPolicy]:
        if self.flavor_match_policy_collection is not None:
            return self.flavor_match_policy_collection.flavor_match_policies
        return self.flavor_match_policies or []


class FlavorgroupOut(BaseModel):
    id: str
    name: str
    flavor_match_policy_collection: FlavorMatchPolicyCollection
    is_default: bool
    created_at: datetime


class FlavorgroupCollection(BaseModel):
    flavorgroups: list[FlavorgroupOut]


class FlavorgroupSearch(Strict):
    id: UUIDStr | None = None
    nameEqualTo: Annotated[str, Field(max_length=255)] | None = None
    nameContains: Annotated[str, Field(max_length=255)] | None = None


class FlavorgroupFlavorCreate(Strict):
    flavor_id: UUIDStr


class FlavorgroupFlavorOut(BaseModel):
    flavorgroup_id: str
    flavor_id: str


# --- flavors ----------------------------------------------------------------------------------------------

FlavorDoc = dict[str, Any]


class FlavorCollectionIn(Strict):
    flavors: Annotated[list[FlavorDoc], Field(min_length=1, max_length=100)]


class SignedFlavorIn(Strict):
    flavor: FlavorDoc
    signature: Annotated[str, Field(max_length=16384)] = ""


class FlavorCreate(Strict):
    """A manual upload: unsigned flavors, or flavors SecL signed (their signature is kept beside ours)."""

    flavor_collection: FlavorCollectionIn | None = None
    signed_flavors: Annotated[list[SignedFlavorIn], Field(min_length=1, max_length=100)] | None = None
    flavorgroup_names: list[GroupName] = Field(default_factory=lambda: ["automatic"], max_length=100)
    # PEM of the certificate of SecL's flavor signer, to report whether the SecL signatures check out.
    secl_signing_certificate: Annotated[str, Field(max_length=65536)] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> FlavorCreate:
        if (self.flavor_collection is None) == (self.signed_flavors is None):
            raise ValueError("give flavor_collection or signed_flavors (exactly one)")
        if self.flavor_collection is not None and self.secl_signing_certificate is not None:
            raise ValueError("secl_signing_certificate only applies to signed_flavors")
        return self


class SeclSignatureOut(BaseModel):
    """The signature SecL's HVS made; ``status`` is verified, unverifiable or unchecked (no certificate)."""

    signature: str
    status: str
    detail: str


class SignedFlavorOut(BaseModel):
    """SecL's signed-flavor envelope plus our scheme marker (and SecL's own signature, when it had one)."""

    flavor: dict[str, Any]
    signature: str
    signature_scheme: str
    secl_signature: SeclSignatureOut | None = None


class SignedFlavorCollection(BaseModel):
    signed_flavors: list[SignedFlavorOut]


class FlavorSearch(Strict):
    id: UUIDStr | None = None
    key: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_]+$")] | None = None
    value: Annotated[str, Field(max_length=1024)] | None = None
    flavorgroupId: UUIDStr | None = None
    flavorPart: FlavorPart | None = None

    @model_validator(mode="after")
    def _key_and_value(self) -> FlavorSearch:
        if (self.key is None) != (self.value is None):
            raise ValueError("key and value go together")
        return self
