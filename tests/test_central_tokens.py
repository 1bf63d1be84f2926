"""Token service: a remembered (already verified) token still expires on time."""

from __future__ import annotations

import pytest

from secl.central.aas import tokens
from secl.central.aas.tokens import TokenService, generate_signing_key
from secl.central.errors import Unauthorized


def test_cached_token_still_expires(monkeypatch: pytest.MonkeyPatch):
    service = TokenService(generate_signing_key(), ttl_seconds=60)
    token, expires = service.issue("alice", ["r"], ["HVS:hosts:search"])
    assert service.verify(token).username == "alice"
    assert service.verify(token).permissions == ("HVS:hosts:search",)  # served from the cache
    monkeypatch.setattr(tokens.time, "time", lambda: expires.timestamp() + 60)
    with pytest.raises(Unauthorized) as excinfo:
        service.verify(token)
    assert excinfo.value.code == "token-expired"


def test_a_token_from_another_key_is_refused_even_with_the_same_claims():
    ours, theirs = TokenService(generate_signing_key(), 60), TokenService(generate_signing_key(), 60)
    token, _ = theirs.issue("alice", [], [])
    with pytest.raises(Unauthorized):
        ours.verify(token)


def test_cache_is_bounded():
    service = TokenService(generate_signing_key(), ttl_seconds=60)
    issued = [service.issue(f"u{i}", [], [])[0] for i in range(5)]
    service._verified = tokens._BoundedCache(3)
    for token in issued:
        service.verify(token)
    assert len(service._verified._items) == 3
