"""Rotating the sealed store's key-encryption key (``secl-central rotate-kek``).

The order makes every crash safe (see :mod:`secl.central.kbs.sealedstore`):

1. write the new KEK file (0600), not yet current: a crash here leaves an unused file, removed next time;
2. re-seal every ``kbs_keys`` row of the sealed store under the new KEK in one transaction: before the
   commit every row is sealed under the old KEKs, after it under the new one, and both files are on disk;
3. make the new KEK current (``current`` replaced by rename);
4. remove the KEK files that no row uses any more (the current one always stays), after a pause that lets
   a running central commit a key it sealed under the old KEK a moment before it changed (such a key keeps
   the old KEK; the next rotation re-seals it).

The new files belong to the owner of the KEK directory (the central's service user) even when root runs
the command: setup gives the KEKs to that user, and a KEK only root can read would lock every key out.

Run it again after a crash at any step: it finishes the work (rows under a KEK that is not current are
re-sealed, unused files go). Material never leaves this process and is never logged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from secl.central import audit
from secl.central.kbs.keystore import StoredKey
from secl.central.kbs.sealedstore import (
    STORE_NAME,
    SealedKeyStore,
    directory_owner,
    make_kek_current,
    new_kek,
    write_kek,
)
from secl.central.store.kbs_models import KeyRecord


@dataclass(frozen=True)
class Rotation:
    old: str
    new: str
    resealed: int
    removed: tuple[str, ...]


def _sealed_rows(session: Session) -> list[KeyRecord]:
    return list(
        session.scalars(select(KeyRecord).where(KeyRecord.store == STORE_NAME).order_by(KeyRecord.id))
    )


def rotate_kek(
    session: Session, directory: Path, *, actor: str = "secl-central", settle_seconds: float = 0.0
) -> Rotation:
    """Re-seal every sealed key under a new KEK, make it current, and remove the KEK files left unused.

    ``settle_seconds``: how long to wait between making the new KEK current and looking for unused KEKs, so
    that a key a running central sealed under the old KEK just before (its row not yet committed) is seen
    using it and the old KEK stays (the next rotation re-seals that key and removes it)."""
    old = SealedKeyStore.from_directory(directory).current
    # Run as root for a central that runs as its service user: the new files go to the directory's owner.
    owner = directory_owner(directory)
    identifier = write_kek(directory, new_kek(), make_current=False, owner=owner)
    store = SealedKeyStore.from_directory(directory)  # holds every KEK on disk, the new one among them
    rows = _sealed_rows(session)
    for row in rows:
        material = store.material(row.id, StoredKey(row.store, row.reference))
        row.reference = store.seal(row.id, material, under=identifier).reference
    audit.record(
        session,
        "kbs.kek-rotated",
        actor=actor,
        outcome="success",
        target=identifier,
        previous=old,
        keys=len(rows),
    )
    session.commit()
    make_kek_current(directory, identifier, owner=owner)
    if settle_seconds > 0:
        time.sleep(settle_seconds)
    session.expire_all()  # rows committed meanwhile by a running central are read afresh
    return Rotation(old, identifier, len(rows), remove_unused_keks(session, directory))


def remove_unused_keks(session: Session, directory: Path) -> tuple[str, ...]:
    """Delete the KEK files that neither the current KEK nor any sealed row needs."""
    store = SealedKeyStore.from_directory(directory)
    in_use = {store.current}
    in_use.update(store.sealed_under(StoredKey(row.store, row.reference)) for row in _sealed_rows(session))
    removed = []
    for path in sorted(directory.glob("*.key")):
        if path.stem not in in_use:
            path.unlink()
            removed.append(path.stem)
    return tuple(removed)
