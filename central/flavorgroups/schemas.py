"""Request and response shapes of /hvs/v2/flavorgroups (pydantic, SecL's JSON names), and the match
policies a flavor group stores and the verifier reads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from secl.central.schemas import FlavorPart, GroupName, Strict, UUIDStr

MatchType = Literal["ANY_OF", "ALL_OF", "LATEST"]
Required = Literal["REQUIRED", "REQUIRED_IF_DEFINED"]


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
