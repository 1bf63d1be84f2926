"""What an initrd needs to run ``secl-measure``: the files of this very installation, at their own paths.

The dracut module (``dracut/90secl-measure/module-setup.sh``) runs ``python -m secl.trustagent.initrdfiles``
with the interpreter of the installed ``secl-measure`` and installs every path it prints (NUL-separated)
into the initrd with ``inst_multiple``, which also pulls in the shared libraries of every ELF file (the
interpreter, the stdlib's extension modules, cryptography's and tpm2-pytss's). The TSS's TCTI modules are
loaded with dlopen, so module-setup.sh adds them by name.

Why mirror the installation path for path instead of building a private bundle: the interpreter then finds
its stdlib, a venv its ``pyvenv.cfg``, and an editable or distribution install its packages exactly as on
the booted system, with no launcher or path rewriting that could diverge from what was tested. The cost is
size: the whole stdlib (less its tests, tkinter, idlelib, ensurepip and the static ``config-*`` directory)
and every third-party package secl-measure imports, whole (a package's lazily imported submodules would
otherwise be missed), about 40-60 MB uncompressed. Packages are found by importing the command and the TPM
adapter and reading ``sys.modules``, so nothing a test suite or the central installed in the same
environment (Flask, SQLAlchemy, pytest...) is copied.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

__all__ = ["initrd_files", "main"]

#: What the command runs, TPM included (tpm2-pytss loads its TSS bindings on import); importing them fills
#: sys.modules with every package the initrd must carry. By name, not as import statements a linter sees
#: as unused and removes.
_COMMAND_MODULES = ("secl.trustagent.measure_cli", "secl.host.tpm", "tpm2_pytss")

#: Parts of the stdlib a measuring command never loads, left out of the initrd.
_STDLIB_SKIP = {
    "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
    "site-packages", "dist-packages", "__pycache__",
}  # fmt: skip


def _stdlib_dirs() -> list[Path]:
    # Where os.py is: the base interpreter's stdlib, lib-dynload inside it (sysconfig's platstdlib would
    # name a venv's own lib directory, which holds site-packages).
    return [Path(os.__file__).resolve().parent]


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _walk(root: Path, skip: set[str]) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in skip and not d.startswith("config-"))
        for name in sorted(files):
            if not name.endswith((".pyc", ".pyo")):
                yield Path(directory) / name


def _module_dir(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve().parent if file else None


def _physical_root(name: str) -> Path | None:
    """The outermost package directory (or module file) that holds module ``name`` on disk as one tree.

    Walks up the dotted name while the parent package's directory holds the child's: ``secl.core`` lives
    in ``secl/``'s tree, while an editable install maps ``secl.trustagent`` to a folder of its own.
    """
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if not file:
        return None
    is_package = hasattr(module, "__path__")
    here = Path(file).resolve().parent if is_package else Path(file).resolve()
    while "." in name:
        parent_name = name.rsplit(".", 1)[0]
        parent = sys.modules.get(parent_name)
        parent_dir = _module_dir(parent) if parent is not None else None
        if parent_dir is None or here.parent != parent_dir:
            break
        name, here = parent_name, parent_dir
    return here


def _scripts() -> list[Path]:
    found = [Path(sysconfig.get_path("scripts")) / "secl-measure"]
    which = shutil.which("secl-measure")
    if which:
        found.append(Path(which))
    return [p for p in dict.fromkeys(found) if p.is_file()]


def initrd_files() -> list[str]:
    """Every file the initrd needs for ``secl-measure`` to run as it does on this system."""
    for name in _COMMAND_MODULES:
        importlib.import_module(name)
    stdlib = _stdlib_dirs()
    files: dict[str, None] = {}
    for root in stdlib:
        files.update(dict.fromkeys(str(p) for p in _walk(root, _STDLIB_SKIP)))
    roots: set[Path] = set()
    for name in list(sys.modules):
        root = _physical_root(name)
        if root is not None and not _under(root, stdlib):
            roots.add(root)
    for root in sorted(roots):
        if root.is_dir():
            files.update(dict.fromkeys(str(p) for p in _walk(root, {"__pycache__"})))
        else:
            files[str(root)] = None
    for directory in {Path(p) for p in sys.path if p and Path(p).is_dir()} - set(stdlib):
        # .pth files run at interpreter start (an editable install's finder is registered by one).
        files.update(dict.fromkeys(str(p) for p in sorted(directory.glob("*.pth"))))
    venv = Path(sys.prefix) / "pyvenv.cfg"
    if venv.is_file():
        files[str(venv)] = None
    files[sys.executable] = None
    files.update(dict.fromkeys(str(p) for p in _scripts()))
    return list(files)


def main() -> None:
    sys.stdout.write("".join(f"{path}\0" for path in initrd_files()))


if __name__ == "__main__":
    main()
