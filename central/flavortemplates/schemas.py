"""Request and response shapes of /hvs/v2/flavor-templates: SecL's flavor-template format (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from secl.central.schemas import Strict, UUIDStr

DigestAlgorithm = Literal["SHA1", "SHA256", "SHA384", "SHA512"]
TemplatePart = Literal["PLATFORM", "OS", "HOST_UNIQUE"]
Tag = Annotated[str, Field(min_length=1, max_length=255)]
Tags = Annotated[list[Tag], Field(min_length=1, max_length=256)]


class TemplatePcr(Strict):
    index: Annotated[int, Field(ge=0, le=23, strict=True)]
    bank: Annotated[list[DigestAlgorithm], Field(min_length=1, max_length=4)]


class EventlogEquals(Strict):
    excluding_tags: Tags | None = None


class PcrRule(Strict):
    pcr: TemplatePcr
    pcr_matches: Annotated[bool, Field(strict=True)] | None = None
    eventlog_equals: EventlogEquals | None = None
    eventlog_includes: Tags | None = None

    @model_validator(mode="after")
    def _one_log_rule(self) -> PcrRule:
        if self.eventlog_equals is not None and self.eventlog_includes is not None:
            raise ValueError("a PCR rule has eventlog_equals or eventlog_includes, not both")
        return self


class FlavorPartTemplate(Strict):
    meta: Annotated[dict[str, Any], Field(max_length=64)]  # copied into the flavor's meta.description
    pcr_rules: Annotated[list[PcrRule], Field(min_length=1, max_length=96)]


class FlavorTemplateIn(Strict):
    id: UUIDStr | None = None
    label: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^\S(.*\S)?$")]
    condition: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=2048)]], Field(min_length=1, max_length=64)
    ]
    flavor_parts: Annotated[dict[TemplatePart, FlavorPartTemplate], Field(min_length=1)]

    def document(self, template_id: str) -> dict[str, Any]:
        return {**self.model_dump(mode="json", exclude_none=True), "id": template_id}


class FlavorTemplateOut(BaseModel):
    id: str
    label: str
    condition: list[str]
    flavor_parts: dict[str, Any]
    is_default: bool
    active: bool
    created_at: datetime
    updated_at: datetime


class FlavorTemplateSearch(Strict):
    id: UUIDStr | None = None
    label: Annotated[str, Field(max_length=255)] | None = None
    flavorPart: TemplatePart | None = None
    includeInactive: bool = False


class FlavorTemplateUpdate(Strict):
    active: bool
