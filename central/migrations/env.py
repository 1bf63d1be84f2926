"""Alembic environment: the URL comes from the caller (``secl-central db upgrade`` or the tests)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from secl.central.store.models import Base

url = context.config.get_main_option("sqlalchemy.url")
connection = context.config.attributes.get("connection")


def run(conn) -> None:  # type: ignore[no-untyped-def]
    # render_as_batch lets the same migrations ALTER tables on SQLite, which cannot do it in place.
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    engine = create_engine(url)
    with engine.connect() as conn:
        run(conn)
    engine.dispose()
