"""The Alembic migrations build exactly the schema the SQLAlchemy models declare, and data migrations
fill what they promise. Runs on SQLite; the PostgreSQL cluster is exercised by every central_state test."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

import secl.central
from secl.central.store.migrate import current_revision, head_revision, upgrade
from secl.central.store.models import Base


def _import_every_model() -> None:
    # Models live in several modules (store/, hvs/privacyca, ...): import them all, so a new model module
    # without its migration is caught here too.
    for module in pkgutil.walk_packages(secl.central.__path__, "secl.central."):
        if ".migrations" not in module.name and module.name != "secl.central.wsgi":
            importlib.import_module(module.name)


def test_migrations_at_head_match_the_models(tmp_path: Path) -> None:
    _import_every_model()
    engine = create_engine(f"sqlite:///{tmp_path / 'central.sqlite3'}")
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"models and migrations disagree; write a migration for: {diff}"


def test_0007_fills_hardware_uuid_from_the_flavor_description(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'central.sqlite3'}")
    upgrade(engine, "0006")
    rows = {
        "f-unique": {"flavor_part": "HOST_UNIQUE", "hardware_uuid": " 0E6B4E1C-AAAA-4BBB-8CCC-0123456789AB "},
        "f-platform": {"flavor_part": "PLATFORM"},
        "f-empty": {"flavor_part": "ASSET_TAG", "hardware_uuid": ""},
    }
    with engine.begin() as connection:
        for index, (flavor_id, description) in enumerate(rows.items()):
            connection.execute(
                text(
                    "INSERT INTO flavors (id, flavor_part, label, description, document, signature,"
                    " signature_scheme, created_at, created_by) VALUES (:id, :part, :label, :description,"
                    " '{}', 'sig', 'scheme', '2026-11-28 00:00:00', 'test')"
                ),
                {"id": flavor_id, "part": description["flavor_part"], "label": f"l{index}",
                 "description": json.dumps(description)},
            )  # fmt: skip
    upgrade(engine)
    with engine.connect() as connection:
        filled = dict(connection.execute(text("SELECT id, hardware_uuid FROM flavors")).all())
    assert filled == {"f-unique": "0e6b4e1c-aaaa-4bbb-8ccc-0123456789ab", "f-platform": None, "f-empty": None}


def test_0010_moves_report_manifests_into_one_row_per_distinct_document(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'central.sqlite3'}")
    upgrade(engine, "0009")
    golden = {
        "host_info": {"host_name": "h1"},
        "pcr_manifest": {"sha2pcrs": [{"index": "pcr_0", "value": "00"}]},
    }
    changed = {**golden, "host_info": {"host_name": "h1", "bios_version": "2"}}
    now = "2026-11-28 00:00:00"
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO hosts (id, name, connection_string, description, status, status_detail, created_at,"
                 " updated_at) VALUES ('h1', 'h1', 'intel:https://h1:1443', '', 'connected', '', :now, :now)"),
            {"now": now},
        )  # fmt: skip
        for report_id, manifest in (("r1", golden), ("r2", golden), ("r3", changed)):
            connection.execute(
                text("INSERT INTO reports (id, host_id, trusted, created_at, expires_at, trust_report, flavors_trust,"
                     " host_manifest, evidence_digest, jwt, created_by, tags) VALUES (:id, 'h1', 1, :now, :now, '{}',"
                     " '{}', :manifest, :digest, 'jwt', 'test', '{}')"),
                {"id": report_id, "now": now, "manifest": json.dumps(manifest), "digest": "0" * 64},
            )  # fmt: skip
    upgrade(engine)
    with engine.connect() as connection:
        documents = dict(connection.execute(text("SELECT digest, document FROM host_manifests")).all())
        pointers = dict(connection.execute(text("SELECT id, host_manifest_digest FROM reports")).all())
    assert len(documents) == 2 and pointers["r1"] == pointers["r2"] != pointers["r3"]
    assert (
        json.loads(documents[pointers["r1"]]) == golden and json.loads(documents[pointers["r3"]]) == changed
    )
