"""The one adapter to ``qemu-img``: what an image is (``info``), and a ``convert`` that streams it.

``qemu-img convert`` does the encrypting and decrypting: it streams in constant memory (a few MiB of
buffers whatever the image size), reads raw and qcow2 alike, and writes exactly the LUKS that QEMU opens
at VM start. This module only builds its argument vectors and runs it:

* the passphrase reaches it as ``--object secret,id=…,file=/proc/self/fd/N`` on an inherited sealed memfd
  (:meth:`~secl.wpm.imagekey.ImageKey.passphrase_fd`), never as ``data=`` on the command line;
* every file is named through ``--image-opts``/``--target-image-opts`` (``driver=…,file.filename=…``) or as
  an absolute path, so in ``convert`` neither a file name with a protocol prefix (``nbd:…``, ``json:…``)
  nor format probing decides what qemu-img opens (``info`` probes on purpose: it is how an input's format
  is found);
* several converts can run at once, each over its own window of one disk (:func:`convert_each`), since
  qemu-img runs its cipher on one thread;
* on a terminal it runs with ``-p`` and turns the ``    (42.19/100%)\\r`` lines it prints into the caller's
  progress bar;
* its error messages become one :class:`~secl.wpm.errors.ImageError` line, a wrong key its own code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import selectors
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from secl.wpm.errors import ImageError
from secl.wpm.progress import Progress
from secl.wpm.tools import find_tool

log = logging.getLogger(__name__)

SECRET_ID = "sec0"
_PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
# What QEMU's LUKS code says when no key slot opens with the passphrase (crypto/block-luks.c).
_WRONG_KEY = "Invalid password, cannot unlock any keyslot"


@dataclass(frozen=True)
class ImageInfo:
    """What ``qemu-img info`` says about an image, without opening its encryption."""

    path: Path
    format: str  # "raw", "qcow2", "luks", ...
    virtual_size: int  # bytes the guest sees
    encrypted: bool
    encrypt_format: str | None  # "luks" or "aes" for an encrypted qcow2, "luks" for a LUKS volume
    backing_file: str | None


def opt(value: str) -> str:
    """A value inside QEMU's ``key=value,…`` option syntax: a comma is written twice."""
    return value.replace(",", ",,")


def secret_object(secret_fd: int) -> str:
    """The ``--object`` that makes the passphrase on ``secret_fd`` known to qemu-img as ``sec0``."""
    return f"secret,id={SECRET_ID},file=/proc/self/fd/{secret_fd}"


def file_opts(
    driver: str, path: Path, *, window: tuple[int, int] | None = None, unlocked: bool = False, **extra: str
) -> str:
    """``--image-opts`` naming ``path`` on the local file driver, with ``driver`` as its format.

    ``window`` = (offset, length) exposes only that part of the image's guest-visible bytes (the ``raw``
    format driver over it), so several qemu-img processes can each convert one part; sector numbers, and
    with them the XTS tweaks, stay those of the whole image. ``unlocked`` turns off QEMU's file locking,
    which would otherwise refuse a second writer of the same file.
    """
    inner = [f"driver={driver}", *(f"{k}={opt(v)}" for k, v in extra.items())]
    inner += ["file.driver=file", f"file.filename={opt(str(path.absolute()))}"]
    if unlocked:
        inner.append("file.locking=off")
    if window is None:
        return ",".join(inner)
    offset, length = window
    return ",".join([f"driver=raw,offset={offset},size={length}", *(f"file.{item}" for item in inner)])


def image_info(path: Path) -> ImageInfo:
    """Probe ``path``'s format and size. A missing or unreadable file is an :class:`ImageError`."""
    if not path.exists():
        raise ImageError("no-such-image", f"{path}: no such file")
    argv = [find_tool("qemu-img"), "info", "--output=json", str(path.absolute())]
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if result.returncode != 0:
        raise ImageError("unreadable-image", f"{path}: {_last_line(result.stderr)}")
    doc = json.loads(result.stdout)
    specific = doc.get("format-specific", {}).get("data", {})
    encrypt_format = specific.get("encrypt", {}).get("format")
    if doc["format"] == "luks":
        encrypt_format = "luks"
    return ImageInfo(
        path=path,
        format=doc["format"],
        virtual_size=int(doc["virtual-size"]),
        encrypted=bool(doc.get("encrypted", False)) or encrypt_format is not None,
        encrypt_format=encrypt_format,
        backing_file=doc.get("backing-filename"),
    )


def convert_argv(args: Sequence[str], *, secret_fd: int, progress: bool) -> list[str]:
    """``qemu-img convert [-p] --object secret… ARGS``: the only argument vector :func:`convert` runs."""
    return [
        find_tool("qemu-img"),
        "convert",
        *(["-p"] if progress else []),
        "--object",
        secret_object(secret_fd),
        *args,
    ]


def convert(args: Sequence[str], *, secret_fd: int, progress: Progress | None, subject: Path) -> None:
    """Run ``qemu-img convert`` with ``args``; ``subject`` is the file error messages name."""
    convert_each([args], secret_fd=secret_fd, progress=progress, subject=subject)


def convert_each(
    arglists: Sequence[Sequence[str]], *, secret_fd: int, progress: Progress | None, subject: Path
) -> None:
    """Run one ``qemu-img convert`` per argument list, all at once, and wait for them all.

    Each child inherits ``secret_fd`` and nothing else. The progress is the mean of theirs (the caller
    gives them equal shares of the work). The first child to fail stops the others and its message is the
    error; whatever ends this call early (an error, Ctrl-C), no child outlives it.
    """
    argvs = [convert_argv(args, secret_fd=secret_fd, progress=progress is not None) for args in arglists]
    for argv in argvs:
        log.debug("running %s", shlex.join(argv))
    procs: list[subprocess.Popen[bytes]] = []
    failed: int | None = None
    with contextlib.ExitStack() as stack:
        errors = [stack.enter_context(tempfile.TemporaryFile()) for _ in argvs]
        try:
            for argv, stderr in zip(argvs, errors, strict=True):
                procs.append(
                    subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE if progress is not None else subprocess.DEVNULL,
                        stderr=stderr,
                        pass_fds=(secret_fd,),
                    )
                )
            failed = _wait_all(procs, progress)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()
            if progress is not None:
                progress.finish(completed=failed is None and all(p.returncode == 0 for p in procs))
        if failed is not None:
            errors[failed].seek(0)
            raise _convert_error(subject, errors[failed].read())


def _wait_all(procs: Sequence[subprocess.Popen[bytes]], progress: Progress | None) -> int | None:
    """Wait for every child, feeding their ``-p`` output to ``progress``; the index of the first to fail.

    One selector watches each child's exit (a pidfd) and its stdout, so a failure is seen as it happens
    rather than after the others finish, without polling.
    """
    fractions = [0.0] * len(procs)
    pending = [b""] * len(procs)
    with selectors.DefaultSelector() as selector:
        pidfds = []
        try:
            for i, proc in enumerate(procs):
                pidfd = os.pidfd_open(proc.pid)
                pidfds.append(pidfd)
                selector.register(pidfd, selectors.EVENT_READ, ("exit", i))
                if proc.stdout is not None:
                    selector.register(proc.stdout, selectors.EVENT_READ, ("progress", i))
            running = len(procs)
            while running:
                for key, _ in selector.select():
                    what, i = key.data
                    if what == "exit":
                        selector.unregister(key.fileobj)
                        running -= 1
                        if procs[i].wait() != 0:
                            return i
                        continue
                    chunk = os.read(key.fd, 4096)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        continue
                    fraction, pending[i] = _last_fraction(pending[i] + chunk)
                    if fraction is not None and progress is not None:
                        fractions[i] = fraction
                        progress.update(sum(fractions) / len(fractions))
        finally:
            for pidfd in pidfds:
                os.close(pidfd)
    return None


def _last_fraction(buffered: bytes) -> tuple[float | None, bytes]:
    """The newest complete ``    (12.50/100%)\\r`` report in qemu-img's ``-p`` output, and what follows it."""
    *lines, rest = re.split(rb"[\r\n]", buffered)
    for line in reversed(lines):
        match = _PROGRESS.search(line)
        if match:
            return float(match.group(1)) / 100, rest
    return None, rest


def _convert_error(subject: Path, stderr: bytes) -> ImageError:
    text = stderr.decode(errors="replace")
    if _WRONG_KEY in text:
        return ImageError(
            "wrong-key", f"{subject}: the key does not open this image (no LUKS key slot accepts it)"
        )
    return ImageError("qemu-img-failed", f"{subject}: {_last_line(stderr)}")


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    if not lines:
        return "qemu-img failed without a message"
    return lines[-1].removeprefix("qemu-img: ")
