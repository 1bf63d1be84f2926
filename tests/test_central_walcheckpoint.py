"""The SQLite write-ahead log is checkpointed by a background thread in long-running central processes."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from secl.central.store.db import Database
from secl.central.store.walcheckpoint import BACKSTOP_PAGES, DEFAULT_PAGES
from tests.central_fixtures import PostgresCluster


def _threshold(database: Database) -> int:
    with database.engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def _write(database: Database, rows: int) -> None:
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE IF NOT EXISTS t (v BLOB)"))
        for _ in range(rows):
            connection.execute(text("INSERT INTO t VALUES (randomblob(3000))"))


def test_the_checkpointer_copies_the_log_and_raises_the_commit_threshold(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        assert _threshold(database) == DEFAULT_PAGES  # a short-lived process: SQLite's own checkpoints
        database.start_checkpointer(interval=0.05)
        checkpointer = database.checkpointer
        assert checkpointer is not None and checkpointer.running
        assert _threshold(database) == BACKSTOP_PAGES  # commits no longer checkpoint themselves
        _write(database, 200)  # ~200 pages in the log, far below the backstop: only the thread copies them
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            last = checkpointer.last
            if last is not None and last.log_pages >= 200 and last.checkpointed_pages == last.log_pages:
                break
            time.sleep(0.05)
        last = checkpointer.last
        assert last is not None and last.log_pages >= 200, last
        assert last.checkpointed_pages == last.log_pages, last
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 200
    finally:
        database.dispose()
    assert database.checkpointer is None and not checkpointer.running  # dispose stops the thread


def test_the_checkpointer_is_started_once(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        database.start_checkpointer(interval=30)
        first = database.checkpointer
        database.start_checkpointer(interval=30)
        assert database.checkpointer is first
        assert first is not None
        assert first.checkpoint().busy is False  # one on demand, as the thread takes them
    finally:
        database.dispose()


def test_postgresql_needs_no_checkpointer(postgres: PostgresCluster) -> None:
    database = Database(postgres.create_database())
    try:
        database.start_checkpointer(interval=0.05)
        assert database.checkpointer is None  # PostgreSQL checkpoints in its own processes
    finally:
        database.dispose()
