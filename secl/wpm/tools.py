"""Finding the external programs the engine runs, and saying which Debian package brings a missing one."""

from __future__ import annotations

import shutil

from secl.wpm.errors import ImageError

# program -> the Debian package that installs it (what a user must apt-get install)
DEBIAN_PACKAGES = {
    "qemu-img": "qemu-utils",
    "cryptsetup": "cryptsetup-bin",
}


def find_tool(name: str) -> str:
    """The absolute path of ``name``; a missing tool is an :class:`ImageError` naming its package.

    Also searches /usr/sbin and /sbin, where Debian puts cryptsetup and where a non-root user's PATH
    often does not look.
    """
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        package = DEBIAN_PACKAGES.get(name, name)
        raise ImageError("tool-missing", f"{name} is not installed: install the Debian package {package}")
    return found
