"""Type-check secl with mypy: ``.venv/bin/python scripts/typecheck.py [mypy options]``.

mypy names a module after the folders it sits in, and secl's folders are not its import names: setup.cfg
maps ``central/`` onto ``secl.central``, ``daemons/trustagent/`` onto ``secl.trustagent`` and so on (the
editable install does the same with an import hook, which mypy cannot follow). So this builds that mapping
as a tree of symbolic links, ``build/typecheck/secl/...``, and runs mypy on the packages that
``[tool.mypy] packages`` in pyproject.toml lists, with ``mypy_path`` pointing at the tree. The tree is made
afresh on every run (a folder added or moved in setup.cfg is picked up); mypy's messages name the links,
whose paths below ``build/typecheck/`` read like the import names.
"""

from __future__ import annotations

import configparser
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"


def package_dirs() -> dict[str, Path]:
    """setup.cfg's ``package_dir``: import name -> folder."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    mapping: dict[str, Path] = {}
    for line in config["options"]["package_dir"].strip().splitlines():
        name, _, folder = line.partition("=")
        mapping[name.strip()] = ROOT / folder.strip()
    return mapping


def build_tree() -> None:
    """The packages as folders named for their import names: a package whose folder holds its own
    subpackages is one link; a package whose subpackages live elsewhere is a folder of links."""
    shutil.rmtree(TREE, ignore_errors=True)
    mapping = package_dirs()
    for name in sorted(mapping, key=lambda n: n.count(".")):
        folder, target = mapping[name], TREE.joinpath(*name.split("."))
        if target.exists() or target.is_symlink():
            continue  # inside a folder already linked whole (secl.hooks.libvirt lives in hooks/)
        elsewhere = [n for n in mapping if n.startswith(name + ".") and not mapping[n].is_relative_to(folder)]
        target.parent.mkdir(parents=True, exist_ok=True)
        if not elsewhere:
            target.symlink_to(folder, target_is_directory=True)
            continue
        target.mkdir()
        for child in folder.iterdir():
            if child.name != "__pycache__":
                (target / child.name).symlink_to(child)


def main() -> int:
    build_tree()
    mypy = Path(sys.executable).with_name("mypy")
    os.chdir(ROOT)
    os.execv(mypy, [str(mypy), *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
