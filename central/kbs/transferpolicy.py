"""Key-transfer policies: when a verified attestation result earns a host a key.

A policy says what a host's signed attestation result must show for a key to be wrapped to its TPM:

- ``require_trusted``: the host is trusted overall (every flavor part its groups require);
- ``required_flavor_parts``: only these parts must be trusted (``PLATFORM``, ``OS``...), for keys whose
  owner cares about less than the whole host; used when ``require_trusted`` is off;
- ``required_tags``: asset tags the report verified, each name with the values it may take (SecL's
  ``usage`` string ``country:US,state:CA`` is the same thing written on one line);
- ``max_report_age_seconds``: how old the report may be when the key leaves (SecL never checks this: a
  host that turned untrusted an hour ago would still receive keys on its old report);
- ``hardware_uuids``: if set, only these hosts.

:func:`decide_transfer` applies a policy to a result whose signature the caller has verified; it raises
:class:`TransferRefused` with the first rule that fails, so the audit log and the caller learn why.
Nothing here touches the database or the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from secl.core.attestation import AttestationResult

#: SecL's name for its default policy: released to a trusted host, or to an authorized caller's own key.
DEFAULT_POLICY_NAME = "require-trust-or-authorization"
DEFAULT_MAX_REPORT_AGE = 300
FLAVOR_PARTS = ("PLATFORM", "OS", "HOST_UNIQUE", "ASSET_TAG", "SOFTWARE")


class TransferRefused(Exception):
    """A policy refuses a key to a host; ``code`` names the rule, the message says what the host lacks."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class PolicyInvalid(ValueError):
    """A policy as written cannot be applied (an unknown flavor part, a malformed usage string)."""


@dataclass(frozen=True, slots=True)
class TransferPolicy:
    require_trusted: bool = True
    required_flavor_parts: tuple[str, ...] = ()
    required_tags: Mapping[str, frozenset[str]] = field(default_factory=dict)
    max_report_age_seconds: int | None = DEFAULT_MAX_REPORT_AGE
    hardware_uuids: frozenset[str] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.required_flavor_parts) - set(FLAVOR_PARTS))
        if unknown:
            raise PolicyInvalid(
                f"unknown flavor part(s) {', '.join(unknown)}; known: {', '.join(FLAVOR_PARTS)}"
            )
        if not self.require_trusted and not self.required_flavor_parts:
            raise PolicyInvalid("a policy that does not require trust must name the flavor parts it requires")
        if self.max_report_age_seconds is not None and self.max_report_age_seconds <= 0:
            raise PolicyInvalid("max_report_age_seconds must be positive")
        for name, values in self.required_tags.items():
            if not name or not values:
                raise PolicyInvalid(f"required tag {name!r} needs a name and at least one value")
        if self.hardware_uuids is not None:
            # Hardware UUIDs compare without case, as the rest of the central stores them (lower case).
            object.__setattr__(self, "hardware_uuids", frozenset(u.lower() for u in self.hardware_uuids))


def parse_usage_tags(usage: str) -> dict[str, frozenset[str]]:
    """SecL's usage string ``country:US,state:CA,state:NV`` as {name: allowed values}.

    A name given twice allows either value. Whitespace around names and values is ignored; an entry
    without ``:`` or with an empty side is an error, not a silently dropped rule.
    """
    tags: dict[str, set[str]] = {}
    for entry in usage.split(","):
        if not entry.strip():
            continue
        name, sep, value = entry.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise PolicyInvalid(f"usage entry {entry.strip()!r} is not name:value")
        tags.setdefault(name, set()).add(value)
    return {name: frozenset(values) for name, values in tags.items()}


def usage_string(tags: Mapping[str, Iterable[str]]) -> str:
    """The usage string of {name: values}, sorted, so a policy reads back the same way it was stored."""
    return ",".join(f"{name}:{value}" for name in sorted(tags) for value in sorted(tags[name]))


def decide_transfer(policy: TransferPolicy, result: AttestationResult, *, now: int) -> None:
    """Raise :class:`TransferRefused` unless ``result`` (already verified) satisfies ``policy`` at ``now``."""
    if policy.hardware_uuids is not None and result.subject.lower() not in policy.hardware_uuids:
        raise TransferRefused(
            f"the key's policy does not list host {result.subject}", code="host-not-permitted"
        )
    if policy.max_report_age_seconds is not None:
        age = now - result.issued_at
        if age > policy.max_report_age_seconds:
            raise TransferRefused(
                f"the host's report is {age} s old; the key's policy accepts at most "
                f"{policy.max_report_age_seconds} s: attest the host again",
                code="report-too-old",
            )
    if policy.require_trusted and not result.trusted:
        raise TransferRefused("the host is not trusted", code="host-untrusted")
    untrusted = [part for part in policy.required_flavor_parts if not result.parts.get(part, False)]
    if untrusted:
        raise TransferRefused(
            f"flavor part(s) {', '.join(untrusted)} of the host are not trusted", code="flavor-part-untrusted"
        )
    missing = sorted(name for name in policy.required_tags if name not in result.tags)
    if missing:
        raise TransferRefused(
            f"the host's report verified no asset tag {', '.join(missing)}", code="asset-tag-missing"
        )
    wrong = sorted(
        f"{name}={result.tags[name]}"
        for name, allowed in policy.required_tags.items()
        if result.tags[name] not in allowed
    )
    if wrong:
        raise TransferRefused(
            f"the host's asset tags {', '.join(wrong)} are not those the key's policy allows",
            code="asset-tag-mismatch",
        )
