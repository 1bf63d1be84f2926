"""An output file that appears under its name only once it is complete, and never with loose permissions.

The engine writes a temporary sibling (``.NAME.XXXXXXXX.partial`` in the same directory, so the final
rename stays on one file system and is atomic), created ``0600`` (less whatever the umask removes) before
any tool writes into it: a decrypted image is plaintext, and qemu-img and cryptsetup keep the mode of a
file that exists. If anything fails — a wrong key, a full disk, Ctrl-C — the temporary file is removed and
nothing is left under the output's name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from secl.wpm.errors import ImageError


@contextmanager
def output_file(final: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a private temporary path; on a clean exit it replaces ``final``, on any exception it is removed."""
    if final.is_dir():
        raise ImageError("output-exists", f"{final}: is a directory")
    if final.exists() and not overwrite:
        raise ImageError("output-exists", f"{final}: already exists (use --force to replace it)")
    parent = final.absolute().parent
    if not parent.is_dir():
        raise ImageError("no-output-directory", f"{final}: directory {parent} does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=parent)
    except OSError as exc:
        raise ImageError("output-unwritable", f"{final}: {exc.strerror or exc}") from None
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
