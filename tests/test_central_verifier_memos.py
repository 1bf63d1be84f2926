"""The verifier's per-process memos: sized by ``verifier_memo_hosts`` (a remembered boot is ~260 KiB), and
forgotten when the database disagrees with them."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.exc import IntegrityError

from secl.central.context import install, services_of
from secl.central.memos import EvidenceMemos, Memos
from secl.central.reports.sign import insert_reports
from secl.central.store.hvs_flavor_models import Host


def _memos(app: Flask, hosts: int) -> EvidenceMemos:
    services = services_of(app)
    config = replace(services.config, verifier_memo_hosts=hosts)
    install(app, replace(services, config=config, memos=Memos(config.verifier_memo_hosts)))
    return services_of(app).memos.evidence


def test_memo_size_follows_the_configuration(central_app: Flask) -> None:
    built: Any = object()  # stands for a ManifestEvidence: the memo only keeps it
    none = _memos(central_app, 0)
    none.manifests.remember(b"key", b"log", built)
    assert none.manifests.lookup(b"key", b"log") is None  # 0: nothing is kept

    two = _memos(central_app, 2)
    assert services_of(central_app).memos.evidence is two  # one per application
    for n in range(3):
        two.manifests.remember(b"key%d" % n, b"log", built)
    assert two.manifests.lookup(b"key0", b"log") is None  # the oldest went when the third came
    kept = two.manifests.lookup(b"key2", b"log")
    assert kept is not None and kept.built is built
    assert two.manifests.lookup(b"key2", b"other log") is None


def test_a_remembered_manifest_that_is_gone_is_forgotten(central_app: Flask) -> None:
    # The database lost a manifest row this process remembered as stored (restored from a backup): the
    # report's INSERT is refused, and the memo goes, so the next attempt stores the manifest again.
    gone = "0" * 64
    now = datetime.now(UTC)
    with central_app.app_context(), central_app.extensions["secl.db"].sessions() as session:
        host = Host(name="h", connection_string="intel:https://h:1443")
        session.add(host)
        session.commit()
        services_of(central_app).memos.stored_manifests.put(gone, True)
        values = {
            "id": str(uuid.uuid4()), "host_id": host.id, "trusted": True, "created_at": now,
            "expires_at": now + timedelta(hours=1), "trust_report": {}, "flavors_trust": {},
            "host_manifest_digest": gone, "evidence_digest": "e" * 64, "jwt": "x.y.z", "created_by": "test",
            "tags": {},
        }  # fmt: skip
        with pytest.raises(IntegrityError):
            insert_reports(session, services_of(central_app).memos, [values])
        session.rollback()
    assert services_of(central_app).memos.stored_manifests.get(gone) is None
