"""The one adapter to ``qemu-img``: what an image is (``info``), and a ``convert`` that streams it.

``qemu-img convert`` does the encrypting and decrypting: it streams in constant memory (a few MiB of
buffers whatever the image size), reads raw and qcow2 alike, and writes exactly the LUKS that QEMU opens
at VM start. This module only builds its argument vectors and runs it:

* the passphrase reaches it as ``--object secret,id=…,file=/proc/self/fd/N`` on an inherited sealed memfd
  (:meth:`~secl.wpm.imagekey.ImageKey.passphrase_fd`), never as ``data=`` on the command line;
* every file is named through ``--image-opts``/``--target-image-opts`` (``driver=…,file.filename=…``) or as
  an absolute path, so neither a file name with a protocol prefix (``nbd:…``, ``json:…``) nor format probing
  decides what qemu-img opens;
* on a terminal it runs with ``-p`` and turns the ``    (42.19/100%)\\r`` lines it prints into the caller's
  progress bar;
* its error messages become one :class:`~secl.wpm.errors.ImageError` line, a wrong key its own code.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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


def file_opts(driver: str, path: Path, **extra: str) -> str:
    """``--image-opts`` naming ``path`` on the local file driver, with ``driver`` as its format."""
    items = [f"driver={driver}", *(f"{k}={opt(v)}" for k, v in extra.items())]
    items += ["file.driver=file", f"file.filename={opt(str(path.absolute()))}"]
    return ",".join(items)


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
    """Run ``qemu-img convert`` with ``args``; ``subject`` is the file error messages name.

    The child inherits ``secret_fd`` and nothing else. Whatever ends this call early (an error, Ctrl-C),
    the child does not outlive it.
    """
    argv = convert_argv(args, secret_fd=secret_fd, progress=progress is not None)
    log.debug("running %s", shlex.join(argv))
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if progress is not None else subprocess.DEVNULL,
            stderr=errors,
            pass_fds=(secret_fd,),
        )
        try:
            if progress is not None:
                assert proc.stdout is not None
                _follow(proc.stdout, progress)
            status = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            if progress is not None:
                progress.finish(completed=proc.returncode == 0)
        errors.seek(0)
        stderr = errors.read()
    if status != 0:
        raise _convert_error(subject, stderr)


def _follow(stdout: IO[bytes], progress: Progress) -> None:
    """Feed qemu-img's ``-p`` lines (``    (12.50/100%)\\r``) to ``progress`` until it closes stdout."""
    fd = stdout.fileno()
    pending = b""
    while chunk := os.read(fd, 4096):
        pending += chunk
        *lines, pending = re.split(rb"[\r\n]", pending)
        for line in reversed(lines):
            match = _PROGRESS.search(line)
            if match:
                progress.update(float(match.group(1)) / 100)
                break


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
