"""Engine and sessions. One :class:`Database` per service context (:mod:`secl.central.context`); a view's
session is opened per request (:func:`secl.central.endpoints.db`). No module-level engine: two apps in one
process (the tests) or two central instances on one PostgreSQL never share anything but the database itself.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from sqlalchemy import CursorResult, Engine, Result, create_engine, event
from sqlalchemy.orm import sessionmaker

from secl.central.store.walcheckpoint import BACKSTOP_PAGES, DEFAULT_PAGES, WalCheckpointer
from secl.central.store.walcheckpoint import INTERVAL as CHECKPOINT_INTERVAL


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, **_engine_options(url))
        self.checkpointer: WalCheckpointer | None = None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", self._sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def start_checkpointer(self, interval: float = CHECKPOINT_INTERVAL) -> None:
        """For a long-running process on SQLite: checkpoint the write-ahead log from a background thread
        instead of in the committing threads (see :mod:`secl.central.store.walcheckpoint`). No-op on
        PostgreSQL or when already running."""
        if not self.is_sqlite or (self.checkpointer is not None and self.checkpointer.running):
            return
        self.checkpointer = WalCheckpointer(
            self.engine, **({} if interval is None else {"interval": interval})
        )
        self.engine.dispose()  # pooled connections were opened with SQLite's default threshold
        self.checkpointer.start()

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None
        self.engine.dispose()

    def _sqlite_pragmas(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers proceed while a writer commits; foreign keys are off by default in SQLite.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # In WAL mode NORMAL syncs at checkpoints, not at every commit: a crash of the central loses
        # nothing, a power cut may lose the last commits but never corrupts the file (SQLite's documented
        # guarantee). Production deployments use PostgreSQL; this is the embedded default.
        cursor.execute("PRAGMA synchronous=NORMAL")
        threshold = BACKSTOP_PAGES if self.checkpointer is not None else DEFAULT_PAGES
        cursor.execute(f"PRAGMA wal_autocheckpoint={threshold}")
        cursor.close()


def _json_dumps(value: Any) -> str:
    # Reports carry a ~50 KB host manifest each; orjson writes it several times faster than json.dumps.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _engine_options(url: str) -> dict[str, Any]:
    json_options = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        # gunicorn's gthread workers share the engine between threads.
        return {"connect_args": {"check_same_thread": False, "timeout": 30}, **json_options}
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10, **json_options}


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE run through ``Session.execute`` matched. The session types its
    results as :class:`Result`; for DML they are :class:`CursorResult`, the only kind with a row count."""
    return cast(CursorResult[Any], result).rowcount
