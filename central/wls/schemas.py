"""Request and response shapes of /wls/v2 (pydantic), in SecL's WLS field names."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from secl.central.schemas import Strict

HardwareUUID = Annotated[
    str, Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
]
KeyUrl = Annotated[str, Field(min_length=1, max_length=2048)]
Uuid = Annotated[
    str, Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
]


class KeyRequestBody(Strict):
    """SecL's ``RequestKey``."""

    hardware_uuid: HardwareUUID
    key_url: KeyUrl


class KeyOut(BaseModel):
    """SecL's ``ReturnKey`` (``key``: the key wrapped to the host's binding key, base64) and our key id."""

    key: str
    key_id: str


class FlavorDescription(Strict):
    flavor_part: Literal["IMAGE"]
    label: Annotated[str, Field(min_length=1, max_length=255)]


class FlavorMeta(Strict):
    id: Uuid
    description: FlavorDescription


class Encryption(Strict):
    key_url: KeyUrl
    digest: Annotated[str, Field(min_length=1, max_length=128)]


class Integrity(BaseModel):
    """SecL's integrity section, kept as given (this central does not enforce image integrity)."""

    model_config = {"extra": "allow"}


class ImageFlavor(Strict):
    """SecL's image flavor (``secl-wpm`` writes it)."""

    meta: FlavorMeta
    encryption_required: bool
    encryption: Encryption | None = None
    integrity_enforced: bool = False
    integrity: Integrity | None = None

    @field_validator("encryption")
    @classmethod
    def _key_url_is_absolute(cls, value: Encryption | None) -> Encryption | None:
        if value is not None and not value.key_url.startswith(("https://", "http://")):
            raise ValueError("encryption.key_url must be an absolute http(s) URL")
        return value


class FlavorCreate(Strict):
    flavor: ImageFlavor
    signature: Annotated[str, Field(max_length=4096)] | None = None  # ignored: the central signs on upload


class SignedFlavorOut(BaseModel):
    flavor: dict[str, Any]
    signature: str


class FlavorSearch(Strict):
    label: Annotated[str, Field(max_length=255)] | None = None


class ImageCreate(Strict):
    id: Uuid
    flavor_ids: Annotated[list[Uuid], Field(max_length=64, default_factory=list)]


class ImageOut(BaseModel):
    id: str
    flavor_ids: list[str]


class ImageSearch(Strict):
    flavor_id: Uuid | None = None


class FlavorKeyQuery(Strict):
    hardware_uuid: HardwareUUID


class FlavorKeyOut(BaseModel):
    """SecL's ``FlavorKey``: the image's signed flavor and, when it is encrypted, the wrapped key."""

    flavor: dict[str, Any]
    signature: str
    key: str | None = None
    key_id: str | None = None


class ReportCreate(BaseModel):
    """SecL's WLS ``Report``: the instance trust report's fields and ``crypt.SignedData`` beside them."""

    model_config = {"extra": "forbid"}

    id: Annotated[str, Field(max_length=36)] | None = None  # ignored: the central names the report
    instance_manifest: dict[str, Any] | None = None
    policy_name: Annotated[str, Field(max_length=255)] | None = None
    results: list[Any] | None = None
    trusted: bool | None = None
    data: Annotated[str, Field(min_length=1, max_length=256 * 1024)]
    hash_alg: Annotated[str, Field(max_length=16)]
    signature: Annotated[str, Field(min_length=1, max_length=4096)]
    cert: Annotated[str, Field(max_length=16 * 1024)] | None = None  # ignored: the certified key counts


class ReportOut(BaseModel):
    id: str
    instance_manifest: dict[str, Any]
    policy_name: str | None
    results: list[Any]
    trusted: bool
    data: str
    hash_alg: str
    signature: str
    created_at: datetime


class ReportSearch(BaseModel):
    model_config = {"extra": "forbid", "populate_by_name": True}

    instance_id: Annotated[str, Field(max_length=64)] | None = None
    hardware_uuid: HardwareUUID | None = None
    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None
    limit: Annotated[int, Field(ge=1, le=10000)] = 1000

    @field_validator("from_", "to")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-01-01T00:00:00Z)")
        return value
