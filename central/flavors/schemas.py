"""Request and response shapes of /hvs/v2/flavors, flavor import and SOFTWARE flavors (pydantic, SecL's
JSON names)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from secl.central.schemas import ConnectionString, FlavorPart, GroupName, Strict, UUIDStr
from secl.core.appmanifest import MAX_MANIFEST_BYTES

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


# --- flavor import from a host ----------------------------------------------------------------------------

ImportPart = Literal["PLATFORM", "OS", "HOST_UNIQUE", "SOFTWARE"]


def _every_part() -> list[ImportPart]:
    return ["PLATFORM", "OS", "HOST_UNIQUE", "SOFTWARE"]


class FlavorImport(Strict):
    host_id: UUIDStr | None = None
    connection_string: ConnectionString | None = None
    partial_flavor_types: Annotated[list[ImportPart], Field(min_length=1, max_length=4)] = Field(
        default_factory=_every_part
    )
    flavorgroup_names: list[GroupName] = Field(default_factory=lambda: ["automatic"], max_length=100)

    @model_validator(mode="after")
    def _one(self) -> FlavorImport:
        if (self.host_id is None) == (self.connection_string is None):
            raise ValueError("give host_id or connection_string (exactly one)")
        if len(set(self.partial_flavor_types)) != len(self.partial_flavor_types):
            raise ValueError("partial_flavor_types lists a part twice")
        return self


# --- SOFTWARE flavors -------------------------------------------------------------------------------------


class FlavorFromAppManifest(Strict):
    host_id: UUIDStr | None = None
    connection_string: ConnectionString | None = None
    manifest: Annotated[str, Field(min_length=1, max_length=MAX_MANIFEST_BYTES)]
    flavorgroup_names: list[GroupName] = Field(default_factory=lambda: ["automatic"], max_length=100)

    @model_validator(mode="after")
    def _one(self) -> FlavorFromAppManifest:
        if (self.host_id is None) == (self.connection_string is None):
            raise ValueError("give host_id or connection_string (exactly one)")
        return self


class DeploySoftwareManifest(Strict):
    flavor_id: UUIDStr
    host_id: UUIDStr


class ManifestDeployed(Strict):
    host_id: str
    flavor_id: str
    label: str
    manifest: str
