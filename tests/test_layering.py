"""The dependency rule between secl's packages: core ← host/central ← cli/daemons.

Read from the source, not from what happens to be importable: every ``import`` and ``from ... import`` in
every module of the distribution (inside functions too, since lazy imports are how a module reaches a
package it does not need at import time) is resolved to a dotted name, and each package's forbidden
names are looked up. Folders map onto import names through setup.cfg's ``package_dir``, so the checker
sees ``daemons/trustagent/cli.py`` as ``secl.trustagent.cli``.

- ``secl.core`` (and the namespace's own modules, ``secl.settings``, ``secl.sdnotify``): no web framework,
  database, HTTP client or udev, and no other secl package: it is tested on vectors alone;
- ``secl.host``: no web framework or database, nothing from the central, a daemon or the CLI;
- ``secl.central``: no daemon, no host code, no CLI;
- a daemon (``secl.trustagent``, ``secl.workloadagent``, ``secl.hooks``): no other daemon, nothing from
  the central or the CLI; what two daemons share goes into ``secl.host``;
- ``secl.cli``: no daemon and nothing from the central: it talks to the central over HTTP;
- ``secl.centralclient`` (the HTTPS client and the ``secl login`` session that the admin CLI and the image
  owner's ``secl-wpm`` share): an HTTP client, and no other secl package above the core;
- ``secl.wpm`` (the image owner's tool): no web framework or database, nothing from the central, a host,
  a daemon or the admin CLI; it reaches the key broker through ``secl.centralclient``.
"""

from __future__ import annotations

import ast
import configparser
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

DAEMONS = ("secl.trustagent", "secl.workloadagent", "secl.hooks")
_FOUNDATION = ("flask", "werkzeug", "sqlalchemy", "requests", "pyudev")
_UPPER = ("secl.central", "secl.host", *DAEMONS, "secl.cli")

#: Package (longest prefix wins) -> the names its modules must not import.
RULES: dict[str, tuple[str, ...]] = {
    "secl": (*_FOUNDATION, *_UPPER),
    "secl.core": (*_FOUNDATION, *_UPPER),
    "secl.host": ("flask", "sqlalchemy", "secl.central", *DAEMONS, "secl.cli"),
    "secl.central": (*DAEMONS, "secl.host", "secl.cli"),
    "secl.cli": (*DAEMONS, "secl.central", "secl.wpm"),
    "secl.centralclient": ("flask", "werkzeug", "sqlalchemy", "pyudev", *_UPPER, "secl.wpm"),
    "secl.wpm": (
        "flask",
        "werkzeug",
        "sqlalchemy",
        "pyudev",
        "secl.central",
        "secl.host",
        *DAEMONS,
        "secl.cli",
    ),
    **{
        daemon: (*(other for other in DAEMONS if other != daemon), "secl.central", "secl.cli")
        for daemon in DAEMONS
    },
}


@dataclass(frozen=True, order=True)
class Violation:
    path: str  # relative to the repository
    line: int
    module: str
    imported: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.imported}"


def package_dirs(repo: Path) -> dict[str, Path]:
    """setup.cfg's ``package_dir``: import name -> folder."""
    config = configparser.ConfigParser()
    config.read(repo / "setup.cfg")
    mapping: dict[str, Path] = {}
    for line in config["options"]["package_dir"].strip().splitlines():
        name, _, folder = line.partition("=")
        mapping[name.strip()] = repo / folder.strip()
    return mapping


def modules(repo: Path) -> Iterator[tuple[str, Path, bool]]:
    """Every module of the distribution: (dotted name, file, is a package's ``__init__``)."""
    mapping = package_dirs(repo)
    seen: set[Path] = set()
    for root in sorted(mapping.values()):
        for file in sorted(root.rglob("*.py")):
            if file in seen or "__pycache__" in file.parts:
                continue
            # The most specific mapping names the file (secl.hooks.libvirt for hooks/libvirt/...).
            name, folder = max(
                ((n, f) for n, f in mapping.items() if f == file.parent or f in file.parents),
                key=lambda item: len(item[1].parts),
            )
            seen.add(file)
            parts = [*name.split("."), *file.relative_to(folder).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            yield ".".join(parts[:-1] if is_package else parts), file, is_package


def imported_names(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in ``source``; ``from a import b`` yields ``a`` and ``a.b``
    (``b`` may be a submodule: ``from secl import trustagent``), relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rule_for(module: str) -> str | None:
    matches = [package for package in RULES if _within(module, package)]
    return max(matches, key=len) if matches else None


def find_violations(repo: Path) -> list[Violation]:
    found: set[Violation] = set()
    for module, file, is_package in modules(repo):
        package = rule_for(module)
        if package is None:
            continue
        for line, name in imported_names(file.read_text(), module, is_package):
            for forbidden in RULES[package]:
                if _within(name, forbidden):
                    found.add(Violation(str(file.relative_to(repo)), line, module, forbidden))
    return sorted(found)


def test_every_package_keeps_the_dependency_rule() -> None:
    violations = find_violations(REPO)
    assert not violations, "the dependency rule is broken:\n" + "\n".join(map(str, violations))


def test_the_checker_sees_every_package() -> None:
    # A wrong folder mapping would check nothing and pass: make sure each layer's modules are read.
    names = {name for name, _, _ in modules(REPO)}
    for expected in (
        "secl.settings",
        "secl.core.eventlog",
        "secl.host.tpm",
        "secl.host.enrollment",
        "secl.central",
        "secl.trustagent.cli",
        "secl.workloadagent",
        "secl.hooks.libvirt",
        "secl.cli.software",
        "secl.centralclient",
        "secl.wpm.keysource",
    ):
        assert expected in names, expected


def test_test_modules_share_helpers_not_each_other() -> None:
    # Shared fixtures and helpers live in helper modules (tests/corpus.py, tests/agent_process.py, ...):
    # importing a test module runs its module-level code and ties two tests' files together.
    found = [
        f"tests/{file.name}:{line}: {name}"
        for file in sorted((REPO / "tests").glob("*.py"))
        for line, name in imported_names(file.read_text(), f"tests.{file.stem}", is_package=False)
        if name.startswith("tests.test_")
    ]
    assert not found, "\n".join(found)


def _fake_repo(root: Path, files: dict[str, str]) -> Path:
    (root / "setup.cfg").write_text(
        "[options]\npackage_dir =\n    secl = secl\n    secl.central = central\n"
        "    secl.trustagent = daemons/trustagent\n    secl.workloadagent = daemons/workloadagent\n"
    )
    for path, source in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(source)
    return root


def test_a_violation_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    repo = _fake_repo(
        tmp_path,
        {
            "secl/__init__.py": "",
            "secl/core/__init__.py": "",
            # Lazy imports count: the core must not reach Flask even inside a function.
            "secl/core/evidence.py": '"""Doc."""\n\n\ndef f():\n    import flask\n    return flask\n',
            "secl/host/tpm.py": "from secl.core import evidence\n",  # allowed: host uses the core
            "daemons/trustagent/__init__.py": "",
            "daemons/trustagent/cli.py": "import os\nfrom secl import workloadagent\n",
            "daemons/workloadagent/__init__.py": "",
            "daemons/workloadagent/keys.py": "from secl.host.tpm import TPMAdapter\n",  # allowed
            "secl/cli/software.py": "\n\nfrom ..trustagent.measure import measure\n",  # relative, resolved
            "central/views.py": "import importlib\nhost = importlib.import_module('secl.host.tpm')\n",
        },
    )
    assert [str(v) for v in find_violations(repo)] == [
        "central/views.py:2: secl.central.views imports secl.host",
        "daemons/trustagent/cli.py:2: secl.trustagent.cli imports secl.workloadagent",
        "secl/cli/software.py:3: secl.cli.software imports secl.trustagent",
        "secl/core/evidence.py:5: secl.core.evidence imports flask",
    ]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("secl.core.quote", "import requests\n"),
        ("secl.core.quote", "from secl.host.tpm import TPMAdapter\n"),
        ("secl.host.enrollment", "from sqlalchemy import select\n"),
        ("secl.host.enrollment", "from secl.trustagent.config import StateFiles\n"),
        ("secl.trustagent.api", "from secl.central.errors import APIError\n"),
        ("secl.workloadagent.keys", "import secl.trustagent.tpm\n"),
        ("secl.hooks.libvirt", "from secl.workloadagent import client\n"),
        ("secl.cli.software", "from secl.trustagent.measure import measure\n"),
        ("secl.central.app", "from secl.host import enrollment\n"),
    ],
)
def test_each_rule_refuses_what_it_names(module: str, source: str) -> None:
    package = rule_for(module)
    assert package is not None
    names = [name for _, name in imported_names(source, module, is_package=False)]
    assert any(_within(name, forbidden) for name in names for forbidden in RULES[package]), (module, source)
