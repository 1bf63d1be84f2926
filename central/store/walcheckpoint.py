"""Checkpoints of an SQLite central's write-ahead log, taken from a background thread.

In WAL mode SQLite appends every commit to the log (``central.db-wal``) and copies the log back into the
database file (a checkpoint) when a commit finds it longer than ``wal_autocheckpoint`` pages (1000 by
default). That commit then does the copy and waits for two fsyncs before it returns: with the default,
about one report batch in ten stalls for as long as the disk takes to sync, in the worker's own thread.

A long-running central process (each gunicorn worker, each ``secl-central worker``) starts a
:class:`WalCheckpointer`: its thread runs a PASSIVE checkpoint every ``interval`` seconds (PASSIVE waits
for no reader or writer; what it cannot copy now, the next one does), and the process's connections raise
their own threshold to :data:`BACKSTOP_PAGES`, a safety net should the thread fall behind. Several
processes may each run one on the same database: SQLite runs one checkpoint at a time and the others
return at once. Short-lived commands (setup, the tests' apps) keep SQLite's default.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import Engine

log = logging.getLogger("secl.central.store")

#: The committing threads' own threshold while a checkpointer runs (~40 MB of log at 4 KiB pages).
BACKSTOP_PAGES = 10_000
#: SQLite's default threshold, for connections of a process without a checkpointer.
DEFAULT_PAGES = 1000
INTERVAL = 1.0  # seconds between checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """What one ``PRAGMA wal_checkpoint(PASSIVE)`` did: pages in the log, and how many are now copied."""

    busy: bool  # another checkpoint was running, or a writer held the database
    log_pages: int
    checkpointed_pages: int


class WalCheckpointer:
    """A daemon thread that checkpoints the database's log every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, engine: Engine, *, interval: float = INTERVAL) -> None:
        self.engine = engine
        self.interval = interval
        self.last: Checkpoint | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="secl-wal-checkpoint", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (after the checkpoint in progress, if any)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def checkpoint(self) -> Checkpoint:
        """One PASSIVE checkpoint, now, on a pooled connection."""
        with self.engine.connect() as connection:
            busy, log_pages, done = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        self.last = Checkpoint(bool(busy), int(log_pages), int(done))
        return self.last

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                done = self.checkpoint()
            except Exception:  # the database is away for a moment: the next interval tries again
                log.warning("WAL checkpoint failed; retrying in %.0f s", self.interval, exc_info=True)
                continue
            if done.log_pages - done.checkpointed_pages > BACKSTOP_PAGES // 2:
                log.warning(
                    "the SQLite write-ahead log holds %d pages not yet copied to the database: a long read "
                    "transaction keeps checkpoints from finishing",
                    done.log_pages - done.checkpointed_pages,
                )
