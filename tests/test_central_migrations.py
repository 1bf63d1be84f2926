"""The Alembic migrations build exactly the schema the SQLAlchemy models declare, and data migrations
fill what they promise. Runs on SQLite; the PostgreSQL cluster is exercised by every central_state test."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

import secl.central
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from secl.central.store.migrate import current_revision, head_revision, upgrade
from secl.central.store.models import Base
from sqlalchemy import create_engine, text


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
