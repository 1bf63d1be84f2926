"""Where a host keeps its application measurements, and how one is recorded in the TPM.

Two kinds of files, both under ``/run/secl`` by default (settings ``measurement_dir`` and
``application_event_log``):

- ``measurements/measurement_<uuid>.xml``: one Measurement XML per manifest, as SecL names them;
- ``measure-log.json``: the PCR 15 events, in SecL's measure-log JSON (:mod:`secl.core.appeventlog`).

Why /run: it is a fresh tmpfs on every boot, like the PCRs, and the initrd's /run is carried over to the
booted system, so what the initrd measured is exactly what the trust agent serves, with no event of an
earlier boot left in the log. Files are created 0640 (directories 0750) and replaced atomically; events
are appended under an exclusive lock, so two measuring processes never lose each other's events.

:func:`record` is the order that keeps the log honest: extend PCR 15 first, then log the event. A crash in
between leaves an extend the log lacks, which the verifier reports as an integrity fault; the reverse
order would leave a logged event the TPM never saw.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from secl.core.appeventlog import (
    APPLICATION_PCR,
    AppEventLogError,
    append_event,
    application_event,
    parse_event_log,
)
from secl.core.hashalg import HashAlg
from secl.core.hostmanifest import PcrEventLog
from secl.core.measurementlog import MeasurementLog
from secl.core.pcrevents import TpmEvent
from secl.host.tpm import TPMAdapter

__all__ = [
    "MeasurementStoreError",
    "append_app_event",
    "measurement_path",
    "read_app_event_log",
    "read_measurements",
    "record",
    "write_measurement",
]

FILE_MODE = 0o640
DIRECTORY_MODE = 0o750


class MeasurementStoreError(Exception):
    """A measurement file or the event log cannot be written or read (``code``: store-io, store-invalid)."""

    def __init__(self, message: str, *, code: str = "store-io") -> None:
        super().__init__(message)
        self.code = code


def measurement_path(directory: Path, uuid: str) -> Path:
    """``<directory>/measurement_<uuid>.xml``; ``uuid`` comes from a parsed manifest, so it is a UUID."""
    return directory / f"measurement_{uuid}.xml"


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        existing = os.stat(path)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        # A device or a pipe (/dev/null, /dev/stdout, a FIFO): write into it. Renaming over it would
        # replace the device node itself with a regular file.
        with open(path, "wb") as f:
            f.write(data)
        return
    path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # a stale temp file may have had another mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_measurement(path: Path, xml: str) -> None:
    """Write one Measurement XML atomically, mode 0640."""
    try:
        _write_atomically(path, xml.encode())
    except OSError as exc:
        raise MeasurementStoreError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_measurements(directory: Path) -> tuple[str, ...]:
    """Every ``measurement_*.xml`` in ``directory`` (sorted by name); none if the directory is absent."""
    try:
        paths = sorted(p for p in directory.glob("measurement_*.xml") if p.is_file())
        return tuple(p.read_text() for p in paths)
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError) as exc:
        raise MeasurementStoreError(f"cannot read the measurements in {directory}: {exc}") from None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def append_app_event(path: Path, event: TpmEvent) -> None:
    """Append ``event`` to the PCR 15 entry of the event log at ``path`` (created if absent)."""
    try:
        with _locked(path):
            try:
                current = path.read_bytes()
            except FileNotFoundError:
                current = b""
            _write_atomically(path, append_event(current, event))
    except AppEventLogError as exc:
        raise MeasurementStoreError(f"{path}: {exc}", code="store-invalid") from None
    except OSError as exc:
        raise MeasurementStoreError(f"cannot update {path}: {exc.strerror or exc}") from None


def read_app_event_log(path: Path) -> tuple[PcrEventLog, ...]:
    """The application event log (unverified until it replays to a quoted PCR 15); none if absent."""
    try:
        return parse_event_log(path.read_bytes())
    except FileNotFoundError:
        return ()
    except AppEventLogError as exc:
        raise MeasurementStoreError(f"{path}: {exc}", code="store-invalid") from None
    except OSError as exc:
        raise MeasurementStoreError(f"cannot read {path}: {exc.strerror or exc}") from None


def record(tpm: TPMAdapter, log: MeasurementLog, event_log: Path) -> TpmEvent:
    """Extend PCR 15 (SHA-256 bank, as SecL) with SHA-256 of the CumulativeHash, then log the event."""
    event = application_event(log)
    tpm.extend_pcr(APPLICATION_PCR.index, {HashAlg.SHA256: bytes.fromhex(event.measurement)})
    append_app_event(event_log, event)
    return event
