"""Key-transfer policies applied to verified attestation results: each rule refuses with its own code."""

from __future__ import annotations

import pytest

from secl.central.kbs.transferpolicy import (
    PolicyInvalid,
    TransferPolicy,
    TransferRefused,
    decide_transfer,
    parse_usage_tags,
    usage_string,
)
from secl.core.attestation import AttestationResult

NOW = 1_800_000_000
UUID = "8f2e1d4c-0000-4000-8000-00000000abcd"


def _result(**changes: object) -> AttestationResult:
    fields: dict[str, object] = {
        "issuer": "central.example",
        "subject": UUID,
        "host_name": "host1",
        "issued_at": NOW - 10,
        "expires_at": NOW + 3600,
        "trusted": True,
        "parts": {"PLATFORM": True, "OS": True},
        "aik_certificate_sha384": "aa" * 48,
        "report_id": "r1",
        "evidence_digest": "bb" * 32,
        "tags": {"country": "DE", "rack": "R12"},
    }
    fields.update(changes)
    return AttestationResult(**fields)  # type: ignore[arg-type]


def _refused(policy: TransferPolicy, result: AttestationResult) -> str:
    with pytest.raises(TransferRefused) as refused:
        decide_transfer(policy, result, now=NOW)
    return refused.value.code


def test_the_default_policy_releases_to_a_trusted_fresh_host_only():
    policy = TransferPolicy()
    decide_transfer(policy, _result(), now=NOW)
    assert _refused(policy, _result(trusted=False, parts={"PLATFORM": False, "OS": True})) == "host-untrusted"
    assert _refused(policy, _result(issued_at=NOW - 301)) == "report-too-old"
    decide_transfer(TransferPolicy(max_report_age_seconds=None), _result(issued_at=NOW - 86_400), now=NOW)


def test_named_flavor_parts_instead_of_overall_trust():
    policy = TransferPolicy(require_trusted=False, required_flavor_parts=("PLATFORM",))
    decide_transfer(policy, _result(trusted=False, parts={"PLATFORM": True, "OS": False}), now=NOW)
    assert (
        _refused(policy, _result(trusted=False, parts={"PLATFORM": False, "OS": True}))
        == "flavor-part-untrusted"
    )
    assert _refused(policy, _result(trusted=False, parts={"OS": True})) == "flavor-part-untrusted"


def test_asset_tags_must_be_verified_with_an_allowed_value():
    policy = TransferPolicy(required_tags=parse_usage_tags("country:DE,country:FR,rack:R12"))
    decide_transfer(policy, _result(), now=NOW)
    decide_transfer(policy, _result(tags={"country": "FR", "rack": "R12"}), now=NOW)
    assert _refused(policy, _result(tags={"country": "US", "rack": "R12"})) == "asset-tag-mismatch"
    assert _refused(policy, _result(tags={"country": "DE"})) == "asset-tag-missing"
    assert _refused(policy, _result(tags={})) == "asset-tag-missing"


def test_a_host_list_limits_the_key_to_those_hosts():
    policy = TransferPolicy(hardware_uuids=frozenset({UUID.upper()}))
    decide_transfer(policy, _result(), now=NOW)
    assert _refused(policy, _result(subject="00000000-0000-4000-8000-000000000000")) == "host-not-permitted"


def test_usage_strings_parse_and_print_back():
    tags = parse_usage_tags(" country:US , state:CA,state:NV,")
    assert tags == {"country": frozenset({"US"}), "state": frozenset({"CA", "NV"})}
    assert usage_string(tags) == "country:US,state:CA,state:NV"
    for bad in ("country", "country:", ":US", "country=US"):
        with pytest.raises(PolicyInvalid):
            parse_usage_tags(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"required_flavor_parts": ("FIRMWARE",)},
        {"require_trusted": False},
        {"max_report_age_seconds": 0},
        {"required_tags": {"country": frozenset()}},
    ],
)
def test_policies_that_cannot_be_applied_are_refused_when_written(kwargs: dict):
    with pytest.raises(PolicyInvalid):
        TransferPolicy(**kwargs)
