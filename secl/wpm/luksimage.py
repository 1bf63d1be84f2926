"""The image owner's encryption engine: a VM image in, a LUKS-encrypted image QEMU opens itself out.

Two output formats, both keyed by the key broker's key (passphrase: base64 of the key, see ``imagekey``):

* ``luks`` — a **LUKS1 volume**: a cryptsetup-written LUKS1 header, then the guest's disk encrypted
  sector by sector with aes-xts-plain64. QEMU's ``luks`` driver opens it (libvirt:
  ``<driver type='raw'/>`` + ``<encryption format='luks'>``), and so do ``cryptsetup`` and dm-crypt.
  Every sector is written, zeros included: it is as large as the guest's disk plus 2 MiB.
* ``qcow2`` — a **qcow2 with LUKS encryption** (``encrypt.format=luks``), written by qemu-img: the same
  cipher inside qcow2 clusters, so the file stays as sparse as the image was. Only QEMU opens it.

Input is a raw or qcow2 image; its format is probed with ``qemu-img info`` unless the caller names it.
A qcow2 with a backing file is flattened into the output (qemu-img reads through the chain).

Every run streams through ``qemu-img convert`` in constant memory, writes a private temporary file that
replaces the output only when complete (``outputfile``), and never puts the key on a command line, in the
environment or on disk (``imagekey``). :func:`decrypt_image` gives the owner a plain raw or qcow2 back.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path

from secl.wpm import qemuimg
from secl.wpm.errors import ImageError
from secl.wpm.imagedigest import flavor_digest, sha256_file
from secl.wpm.imagekey import ImageKey
from secl.wpm.luksheader import (
    CIPHER_ALG,
    CIPHER_MODE,
    DEFAULT_ITER_TIME_MS,
    HASH_ALG,
    IVGEN_ALG,
    PAYLOAD_OFFSET,
    format_luks1,
    pbkdf2_iterations,
)
from secl.wpm.outputfile import output_file
from secl.wpm.progress import NO_PROGRESS, Progress, ProgressFactory

log = logging.getLogger(__name__)

SECTOR = 512
# qemu-img encrypts on a single thread, so a LUKS1 volume is written by up to one qemu-img per CPU, each
# converting its own window of the disk (two on two cores: 1,054 MB/s for the pass instead of 561). Four at
# most, ~30 MiB each; and no window under 64 MiB, where a process's start and key derivation would dominate.
DEFAULT_JOBS = min(4, len(os.sched_getaffinity(0)))
_MIN_WINDOW = 64 << 20
_WINDOW_ALIGN = 1 << 20


class EncryptedFormat(StrEnum):
    LUKS = "luks"  # a LUKS1 volume
    QCOW2 = "qcow2"  # a qcow2 with encrypt.format=luks


class PlainFormat(StrEnum):
    RAW = "raw"
    QCOW2 = "qcow2"


@dataclass(frozen=True)
class EncryptedImage:
    """What :func:`encrypt_image` wrote: the file, its format, the guest's disk size and the file's digest."""

    path: Path
    format: EncryptedFormat
    virtual_size: int
    sha256: bytes

    @property
    def digest(self) -> str:
        """The digest as an image flavor carries it (base64 of the SHA-256)."""
        return flavor_digest(self.sha256)


@dataclass(frozen=True)
class DecryptedImage:
    path: Path
    format: PlainFormat
    virtual_size: int


def encrypt_image(
    source: Path,
    target: Path,
    key: ImageKey,
    *,
    format: EncryptedFormat = EncryptedFormat.LUKS,
    source_format: PlainFormat | None = None,
    iter_time_ms: int = DEFAULT_ITER_TIME_MS,
    jobs: int = DEFAULT_JOBS,
    overwrite: bool = False,
    progress: ProgressFactory = NO_PROGRESS,
) -> EncryptedImage:
    """Encrypt the VM image ``source`` into ``target`` under ``key``; return what was written.

    ``iter_time_ms`` is the PBKDF2 time of the key slot (see ``luksheader``: the passphrase is a random
    key, so a short time costs no security and saves every VM start). ``jobs`` qemu-img processes write
    a LUKS1 volume, each its own part (qemu-img encrypts on one thread; a qcow2 has one writer). Raises
    :class:`ImageError` with nothing left at ``target`` if anything fails.
    """
    info = _plain_source(source, source_format)
    size = _round_up(info.virtual_size, SECTOR)
    with output_file(target, overwrite=overwrite) as scratch, key.passphrase_fd() as secret_fd:
        if format is EncryptedFormat.LUKS:
            # Sized first: cryptsetup formats the file in place, and QEMU takes the volume to be the file
            # less the payload offset.
            _allocate(scratch, PAYLOAD_OFFSET + size)
            format_luks1(scratch, secret_fd=secret_fd, iterations=pbkdf2_iterations(iter_time_ms))
            arglists = _conversions(
                partial(qemuimg.file_opts, info.format, source),
                partial(qemuimg.file_opts, "luks", scratch, **{"key-secret": qemuimg.SECRET_ID}),
                size,
                jobs,
            )
        else:
            create_opts = ",".join(
                [
                    "encrypt.format=luks",
                    f"encrypt.key-secret={qemuimg.SECRET_ID}",
                    f"encrypt.cipher-alg={CIPHER_ALG}",
                    f"encrypt.cipher-mode={CIPHER_MODE}",
                    f"encrypt.ivgen-alg={IVGEN_ALG}",
                    f"encrypt.hash-alg={HASH_ALG}",
                    f"encrypt.iter-time={iter_time_ms}",
                ]
            )
            target_path = str(scratch.absolute())
            source_opts = qemuimg.file_opts(info.format, source)
            arglists = [["--image-opts", source_opts, "-O", "qcow2", "-o", create_opts, target_path]]
        bar = _bar(progress, "encrypting", size)
        qemuimg.convert_each(arglists, secret_fd=secret_fd, progress=bar, subject=source)
        written = qemuimg.image_info(scratch)
        if written.virtual_size != size or not written.encrypted:
            # A payload offset other than the one we sized the file for would show here, not at VM start.
            raise ImageError(
                "internal-error",
                f"{target}: wrote a {written.format} image of {written.virtual_size} bytes, expected an "
                f"encrypted one of {size}",
            )
        sha256 = sha256_file(scratch, progress)
    log.info("encrypted %s (%s, %d bytes) into %s (%s)", source, info.format, size, target, format.value)
    return EncryptedImage(path=target, format=format, virtual_size=size, sha256=sha256)


def decrypt_image(
    source: Path,
    target: Path,
    key: ImageKey,
    *,
    format: PlainFormat | None = None,
    jobs: int = DEFAULT_JOBS,
    overwrite: bool = False,
    progress: ProgressFactory = NO_PROGRESS,
) -> DecryptedImage:
    """Decrypt an image :func:`encrypt_image` wrote (or any LUKS1 volume / LUKS qcow2) into a plain one.

    ``format`` defaults to the container's own: a LUKS1 volume becomes a raw image, an encrypted qcow2 a
    plain qcow2. A raw output is written by up to ``jobs`` qemu-img processes, a qcow2 by one. A wrong
    key is an :class:`ImageError` with code ``wrong-key``, and nothing is written.
    """
    info = qemuimg.image_info(source)
    if info.format == "raw" and _luks_version(source) is not None:
        raise ImageError(
            "unsupported-encryption",
            f"{source}: a LUKS{_luks_version(source)} volume; QEMU 7.2 opens LUKS1 only, and so does secl-wpm",
        )
    if info.format == "luks":
        source_opts = partial(qemuimg.file_opts, "luks", source, **{"key-secret": qemuimg.SECRET_ID})
        default = PlainFormat.RAW
    elif info.format == "qcow2" and info.encrypt_format == "luks":
        secret = {"encrypt.key-secret": qemuimg.SECRET_ID}
        source_opts = partial(qemuimg.file_opts, "qcow2", source, **secret)
        default = PlainFormat.QCOW2
    elif info.encrypted:
        raise ImageError(
            "unsupported-encryption",
            f"{source}: {info.format} encrypted with {info.encrypt_format!r}; secl-wpm decrypts LUKS only",
        )
    else:
        raise ImageError("not-encrypted", f"{source}: a {info.format} image that is not encrypted")
    out_format = format or default
    with output_file(target, overwrite=overwrite) as scratch, key.passphrase_fd() as secret_fd:
        if out_format is PlainFormat.RAW:
            os.truncate(scratch, info.virtual_size)  # sparse: qemu-img leaves the disk's zeros as holes
            target_opts = partial(qemuimg.file_opts, "raw", scratch)
            arglists = _conversions(source_opts, target_opts, info.virtual_size, jobs)
        else:
            arglists = [["--image-opts", source_opts(), "-O", out_format.value, str(scratch.absolute())]]
        bar = _bar(progress, "decrypting", info.virtual_size)
        qemuimg.convert_each(arglists, secret_fd=secret_fd, progress=bar, subject=source)
    log.info("decrypted %s into %s (%s)", source, target, out_format.value)
    return DecryptedImage(path=target, format=out_format, virtual_size=info.virtual_size)


def _plain_source(source: Path, named: PlainFormat | None) -> qemuimg.ImageInfo:
    info = qemuimg.image_info(source)
    if named is PlainFormat.RAW and info.format != "raw":
        # The caller's word over the probe: a raw disk whose first sector happens to look like a qcow2 or
        # LUKS header is still a raw disk, and is encrypted as one.
        size = source.stat().st_size
        return qemuimg.ImageInfo(source, "raw", size, encrypted=False, encrypt_format=None, backing_file=None)
    if info.encrypted or (info.format == "raw" and _luks_version(source) is not None):
        # QEMU probes a LUKS2 volume as raw: without this it would be encrypted a second time.
        raise ImageError(
            "already-encrypted", f"{source}: already encrypted ({info.format}); decrypt it first to re-key it"
        )
    if named is not None and named.value != info.format:
        raise ImageError("format-mismatch", f"{source}: a {info.format} image, not {named.value}")
    if info.format not in {f.value for f in PlainFormat}:
        raise ImageError(
            "unsupported-format",
            f"{source}: a {info.format} image; secl-wpm reads raw and qcow2 "
            f"(qemu-img convert -O qcow2 turns it into one)",
        )
    return info


def _conversions(
    source: Callable[..., str], target: Callable[..., str], size: int, jobs: int
) -> list[list[str]]:
    """``qemu-img convert -n`` arguments, one list per window of a ``size``-byte disk (at most ``jobs``).

    ``source`` and ``target`` build each side's ``--image-opts`` (``qemuimg.file_opts`` with the image's
    driver, path and secret bound), given the window and whether the file is shared with other writers.
    """
    count = max(1, min(jobs, size // _MIN_WINDOW))
    if count == 1:
        return [["--image-opts", source(), "-n", "--target-image-opts", target()]]
    step = _round_up(-(-size // count), _WINDOW_ALIGN)
    arglists = []
    for offset in range(0, size, step):
        window = (offset, min(step, size - offset))
        # Several writers of one file: QEMU's lock would refuse the second. The file is our private
        # temporary one, and each writer's window keeps it to its own sectors.
        target_opts = target(window=window, unlocked=True)
        arglists.append(["--image-opts", source(window=window), "-n", "--target-image-opts", target_opts])
    return arglists


def _allocate(path: Path, size: int) -> None:
    """Make ``path`` ``size`` bytes, allocated on disk where the file system can.

    qemu-img writes every sector of a LUKS1 volume anyway; allocating the blocks up front rather than as
    the writes arrive cut qemu-img's kernel time on ext4 from ~1.3 s to ~0.5 s per GiB (its wall time
    from ~2.4-3.1 s to ~1.9 s), and a disk too small fails here, before any encrypting.
    """
    with path.open("r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, size)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise ImageError("no-space", f"{path.parent}: no room for a {size}-byte volume") from None
            f.truncate(size)  # a file system that cannot allocate ahead: a sparse file does as well


def _luks_version(path: Path) -> int | None:
    """The LUKS version in the header at the start of ``path`` (magic ``LUKS\\xba\\xbe``), or None."""
    try:
        with path.open("rb") as f:
            header = f.read(8)
    except OSError:
        return None
    if len(header) < 8 or header[:6] != b"LUKS\xba\xbe":
        return None
    return int.from_bytes(header[6:8], "big")


def _bar(progress: ProgressFactory, label: str, total: int) -> Progress | None:
    """A progress bar for qemu-img to drive, or None, so qemu-img runs without ``-p`` when nobody watches."""
    return None if progress is NO_PROGRESS else progress(label, total)


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit
