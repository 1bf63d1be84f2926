"""The measuring engine: walk a root file system for a SecL manifest and hash what it names.

``measure(manifest, root)`` returns the :class:`~secl.core.measurementlog.MeasurementLog` SecL's tools
would write for that root (the digest rules are in :mod:`secl.core.measurementlog`). The boot-time run
(``secl-measure`` from the initrd, root mounted at /sysroot) and the trust agent's "measure now" both
call it.

Confinement. Every manifest path is resolved under ``root`` one component at a time, as ``chroot`` or
``openat2(RESOLVE_IN_ROOT)`` would: a symbolic link is followed *inside* the root (an absolute target
starts again at the root, which is what the host sees once the root is mounted at /), a ``..`` that
would climb above the root is an error, and more than 40 links in one path is a loop. Searches
(``SearchType="regex"``) and directory listings never follow links at all, and a directory met twice
in one search (a bind-mount cycle) is an error. Files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and
must be regular files, so a FIFO or device in the tree cannot block or feed the measurement.

Speed. Files are hashed on a thread pool (hashlib releases the GIL while hashing), each streamed
through one reusable 1 MiB buffer per thread, so memory stays constant whatever the file sizes. Small
files are read in one call. The walk runs on the calling thread while the pool hashes what it found.

Every failure is a :class:`MeasureError` with a ``code`` and the manifest path it concerns.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from secl.core.appmanifest import EntryKind, Manifest, ManifestEntry
from secl.core.hashalg import HashAlg
from secl.core.measurementlog import (
    Measured,
    MeasurementLog,
    MeasurementLogError,
    cumulative_hash,
    directory_digest,
    symlink_digest,
)

__all__ = ["MAX_LINKS", "MAX_SEARCH_ENTRIES", "MeasureError", "MeasureResult", "measure"]

MAX_LINKS = 40  # Linux's own limit (ELOOP) for links followed while resolving one path
MAX_SEARCH_ENTRIES = 2_000_000  # entries one regex search may visit before it is called runaway
_BUFFER = 1024 * 1024
# Small files go to the pool in batches: one task per 4 KiB file would cost more in thread hand-offs
# than the hashing itself. Large files go alone, so they spread over the threads.
_BATCH_FILES = 64
_BATCH_BYTES = 8 * _BUFFER
_HASHLIB = {HashAlg.SHA256: hashlib.sha256, HashAlg.SHA384: hashlib.sha384}
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY

Progress = Callable[[int, int], None]
"""Called on the measuring thread as files complete: (files hashed, bytes hashed) so far."""


class MeasureError(Exception):
    """A path named by the manifest cannot be measured. ``code``: path-missing, path-unreadable,
    path-escapes-root, symlink-loop, directory-loop, not-a-file, not-a-directory, not-a-symlink,
    name-has-newline, search-too-large, root-invalid. ``path`` is the path inside the root."""

    def __init__(self, message: str, *, code: str, path: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.path = path


@dataclass(frozen=True)
class MeasureResult:
    """A measurement and what it took: files and bytes hashed, literal paths skipped as missing."""

    log: MeasurementLog
    files: int
    bytes: int
    skipped: tuple[str, ...] = ()


def _os_error(exc: OSError, path: str, doing: str) -> MeasureError:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return MeasureError(f"{path}: no such file or directory", code="path-missing", path=path)
    if exc.errno == errno.ELOOP:
        return MeasureError(
            f"{path}: is a symbolic link where none was expected", code="not-a-file", path=path
        )
    return MeasureError(f"{path}: cannot {doing}: {exc.strerror or exc}", code="path-unreadable", path=path)


class _Root:
    """Path resolution confined to one root directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise MeasureError(f"root {os.fspath(root)!r} is not a directory", code="root-invalid")
        self.real = real.rstrip("/")  # "" for the file system root

    def join(self, parts: list[str]) -> str:
        return self.real + "/" + "/".join(parts) if parts else self.real or "/"

    def resolve(self, path: str, *, follow_last: bool) -> tuple[str, os.stat_result]:
        """The real location of manifest ``path`` under the root, every link resolved inside the root,
        and what ``lstat`` says of it."""
        pending = [p for p in path.split("/") if p and p != "."]
        done: list[str] = []
        links = 0
        info: os.stat_result | None = None
        while pending:
            part = pending.pop(0)
            if part == "..":
                if not done:
                    raise MeasureError(f"{path}: climbs above the root", code="path-escapes-root", path=path)
                done.pop()
                continue
            candidate = self.join([*done, part])
            try:
                info = os.lstat(candidate)
            except OSError as exc:
                raise _os_error(exc, path, "look up") from None
            if stat.S_ISLNK(info.st_mode) and (pending or follow_last):
                links += 1
                if links > MAX_LINKS:
                    raise MeasureError(
                        f"{path}: more than {MAX_LINKS} symbolic links (a loop)",
                        code="symlink-loop",
                        path=path,
                    )
                try:
                    target = os.readlink(candidate)
                except OSError as exc:
                    raise _os_error(exc, path, "read a link in") from None
                if target.startswith("/"):
                    done = []
                pending = [p for p in target.split("/") if p and p != "."] + pending
                info = None
                continue
            if pending and not stat.S_ISDIR(info.st_mode):
                raise MeasureError(f"{path}: {part} is not a directory", code="path-missing", path=path)
            done.append(part)
        real = self.join(done)
        if info is None:  # the root itself (also reached through a link)
            info = os.lstat(real)
        return real, info


_buffers = threading.local()


def _open(real: str, path: str) -> tuple[int, os.stat_result]:
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError as exc:
        raise _os_error(exc, path, "open") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # replaced since it was looked at
        os.close(fd)
        raise MeasureError(f"{path}: not a regular file", code="not-a-file", path=path)
    return fd, info


def _hash_open(fd: int, size_hint: int, path: str, alg: HashAlg) -> tuple[bytes, int]:
    """Stream an open regular file through ``alg`` and close it; return its digest and the bytes read."""
    try:
        hasher = _HASHLIB[alg]()
        size = 0
        if size_hint < _BUFFER:
            # Ask for more than the inode claims: a short read is the end (one read for most files),
            # and a file that grew since is still read to its end.
            want = size_hint + 4096
            while chunk := os.read(fd, want):
                hasher.update(chunk)
                size += len(chunk)
                if len(chunk) < want:
                    break
        else:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            buffer = getattr(_buffers, "buffer", None)
            if buffer is None:
                buffer = _buffers.buffer = bytearray(_BUFFER)
            view = memoryview(buffer)
            while count := os.readv(fd, [buffer]):
                hasher.update(view[:count])
                size += count
        return hasher.digest(), size
    except OSError as exc:
        raise _os_error(exc, path, "read") from None
    finally:
        os.close(fd)


def _hash_file(real: str, path: str, alg: HashAlg) -> tuple[bytes, int]:
    fd, info = _open(real, path)
    return _hash_open(fd, info.st_size, path, alg)


Hashed = tuple[bytes, int] | Future[tuple[bytes, int]]


def _hash_batch(files: list[tuple[str, str]], alg: HashAlg, pool: ThreadPoolExecutor) -> list[Hashed]:
    """Hash small files here; a file found large is handed back to the pool on its own, so large files
    spread over the threads even when a search could not tell their sizes."""
    results: list[Hashed] = []
    for real, path in files:
        fd, info = _open(real, path)
        if info.st_size >= _BUFFER:
            os.close(fd)
            results.append(pool.submit(_hash_file, real, path, alg))
        else:
            results.append(_hash_open(fd, info.st_size, path, alg))
    return results


@dataclass
class _Pending:
    """One entry in measurement order: its digest now (Dir, Symlink) or its place in a hashing task."""

    kind: EntryKind
    path: str
    entry: ManifestEntry
    digest: bytes | None = None
    task: Future[list[Hashed]] | None = None
    position: int = 0


class _Measurer:
    def __init__(self, manifest: Manifest, root: _Root, pool: ThreadPoolExecutor, skip_missing: bool) -> None:
        self.manifest = manifest
        self.alg = manifest.hash_alg
        self.root = root
        self.pool = pool
        self.skip_missing = skip_missing
        self.items: list[_Pending] = []
        self.skipped: list[str] = []
        self.batch: list[tuple[_Pending, str]] = []
        self.batch_bytes = 0

    def plan(self) -> None:
        for entry in self.manifest.entries:
            if entry.path.is_regex:
                for path, real in self._search(entry):
                    self._add(entry, path, real, None)
                continue
            try:
                real, info = self.root.resolve(
                    entry.path.text, follow_last=entry.kind is not EntryKind.SYMLINK
                )
            except MeasureError as exc:
                if exc.code == "path-missing" and self.skip_missing:
                    self.skipped.append(entry.path.text)
                    continue
                raise
            self._add(entry, entry.path.text, real, info)
        self.flush()

    def _add(self, entry: ManifestEntry, path: str, real: str, info: os.stat_result | None) -> None:
        """Queue or compute one entry. ``info`` is the entry's lstat when known; a search has already
        checked the type (regular file, directory, link) from the directory listing."""
        item = _Pending(entry.kind, path, entry)
        if entry.kind is EntryKind.FILE:
            # Look before opening: opening a device or a FIFO can have effects of its own.
            if info is not None and not stat.S_ISREG(info.st_mode):
                raise MeasureError(f"{path}: not a regular file", code="not-a-file", path=path)
            size = info.st_size if info is not None else 0
            if size >= _BUFFER:
                self._submit([(item, real)])
            else:
                self.batch.append((item, real))
                self.batch_bytes += size
                if len(self.batch) >= _BATCH_FILES or self.batch_bytes >= _BATCH_BYTES:
                    self.flush()
        elif entry.kind is EntryKind.DIR:
            item.digest = self._directory(entry, path, real)
        else:
            item.digest = self._symlink(path, real)
        self.items.append(item)

    def _submit(self, files: list[tuple[_Pending, str]]) -> None:
        task = self.pool.submit(_hash_batch, [(real, item.path) for item, real in files], self.alg, self.pool)
        for position, (item, _) in enumerate(files):
            item.task, item.position = task, position

    def flush(self) -> None:
        if self.batch:
            self._submit(self.batch)
        self.batch, self.batch_bytes = [], 0

    def _directory(self, entry: ManifestEntry, path: str, real: str) -> bytes:
        names = []
        try:
            with os.scandir(real) as listing:
                for item in listing:
                    if not item.is_dir(follow_symlinks=False) and entry.selects(item.name):
                        names.append(os.fsencode(item.name))
        except NotADirectoryError:
            raise MeasureError(f"{path}: not a directory", code="not-a-directory", path=path) from None
        except OSError as exc:
            raise _os_error(exc, path, "list") from None
        try:
            return directory_digest(self.alg, names)
        except MeasurementLogError as exc:
            raise MeasureError(f"{path}: {exc}", code=exc.code, path=path) from None

    def _symlink(self, path: str, real: str) -> bytes:
        try:
            target = os.readlink(os.fsencode(real))
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise MeasureError(f"{path}: not a symbolic link", code="not-a-symlink", path=path) from None
            raise _os_error(exc, path, "read the link") from None
        return symlink_digest(self.alg, os.fsencode(path), target)

    def _search(self, entry: ManifestEntry) -> list[tuple[str, str]]:
        """(path, real path) of every entry of the element's kind whose whole path matches, sorted as
        bytes. ``find`` lists in directory order, which differs between file systems; sorting makes the
        CumulativeHash a function of the tree alone."""
        base = entry.path.search_root
        try:
            base_real, _ = self.root.resolve(base, follow_last=True)
        except MeasureError as exc:
            if exc.code == "path-missing":
                return []  # nothing there to match, as find finds nothing
            raise
        found: list[tuple[str, str]] = []
        if entry.kind is EntryKind.DIR and entry.path.matches(base):
            found.append((base, base_real))
        prefix = base.rstrip("/")
        try:
            top = os.stat(base_real)
        except OSError as exc:
            raise _os_error(exc, base, "look up") from None
        seen = {(top.st_dev, top.st_ino)}
        stack = [(prefix, base_real)]
        visited = 0
        while stack:
            directory, directory_real = stack.pop()
            try:
                with os.scandir(directory_real) as listing:
                    children = list(listing)
            except OSError as exc:
                raise _os_error(exc, directory or "/", "list") from None
            visited += len(children)
            if visited > MAX_SEARCH_ENTRIES:
                raise MeasureError(
                    f"{entry.path.text}: search visited more than {MAX_SEARCH_ENTRIES} entries",
                    code="search-too-large",
                    path=base,
                )
            for child in children:
                path = f"{directory}/{child.name}"
                try:
                    is_dir = child.is_dir(follow_symlinks=False)
                    if entry.kind is EntryKind.FILE:
                        wanted = child.is_file(follow_symlinks=False)
                    elif entry.kind is EntryKind.DIR:
                        wanted = is_dir
                    else:
                        wanted = child.is_symlink()
                    if is_dir:
                        info = child.stat(follow_symlinks=False)
                        key = (info.st_dev, info.st_ino)
                        if key in seen:
                            raise MeasureError(
                                f"{path}: directory met twice in one search (a mount loop)",
                                code="directory-loop",
                                path=path,
                            )
                        seen.add(key)
                        stack.append((path, child.path))
                except OSError as exc:
                    raise _os_error(exc, path, "look up") from None
                if wanted and entry.path.matches(path):
                    found.append((path, child.path))
        found.sort(key=lambda pair: os.fsencode(pair[0]))
        return found

    def collect(self, progress: Progress | None) -> MeasureResult:
        entries: list[Measured] = []
        digests: list[bytes] = []
        files = total = 0
        for item in self.items:
            if item.task is not None:
                hashed = item.task.result()[item.position]
                digest, size = hashed.result() if isinstance(hashed, Future) else hashed
                files += 1
                total += size
                if progress is not None:
                    progress(files, total)
            else:
                assert item.digest is not None
                digest = item.digest
            digests.append(digest)
            dir_filters = (
                (item.entry.include, item.entry.exclude) if item.kind is EntryKind.DIR else (None, None)
            )
            entries.append(Measured(item.kind, item.path, digest.hex(), *dir_filters))
        chain = cumulative_hash(self.alg, digests)
        log = MeasurementLog(
            self.manifest.label,
            self.manifest.uuid,
            self.manifest.digest_alg.value,
            tuple(entries),
            chain.hex(),
        )
        return MeasureResult(log, files, total, tuple(self.skipped))


def measure(
    manifest: Manifest,
    root: str | os.PathLike[str] = "/",
    *,
    workers: int | None = None,
    skip_missing: bool = False,
    progress: Progress | None = None,
) -> MeasureResult:
    """Measure ``manifest`` against the tree at ``root``.

    ``skip_missing`` leaves out literal paths that do not exist, as SecL's tool does, instead of
    failing: the verifier then names them as missing entries. ``workers`` is the hashing thread count
    (default: one per CPU this process may run on).
    """
    confined = _Root(root)
    # One thread per CPU: hashing large files scales with cores, while more threads than cores only add
    # GIL hand-offs to the per-file work of small files.
    count = workers or len(os.sched_getaffinity(0))
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="secl-measure") as pool:
        measurer = _Measurer(manifest, confined, pool, skip_missing)
        try:
            measurer.plan()
            return measurer.collect(progress)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
