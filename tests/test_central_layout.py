"""The central's layout rules (README, "How the code is laid out"), checked on the source:

- services know nothing of HTTP: only the web layer imports Flask or werkzeug;
- no import cycles between the central's modules, and none between its areas;
- each area with an API declares its one blueprint in its ``views.py``;
- only ``context.py`` knows where an application keeps its service context.
"""

from __future__ import annotations

import ast
from pathlib import Path

import secl.central

CENTRAL = Path(secl.central.__file__).resolve().parent
PACKAGE = "secl.central"
# The web layer: what turns HTTP into service calls and errors into HTTP, and the application factory.
WEB = {"__init__", "endpoints", "errors", "openapi", "versions", "wsgi", "gunicorn_conf"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in CENTRAL.rglob("*.py"):
        relative = path.relative_to(CENTRAL).with_suffix("")
        if relative.parts[0] == "migrations":
            continue
        parts = [p for p in relative.parts if p != "__init__"] or ["__init__"]
        found[".".join(parts)] = path
    return found


def _imports(tree: ast.AST, *, module_level: bool) -> set[str]:
    nodes = ast.iter_child_nodes(tree) if module_level else ast.walk(tree)
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and module_level:  # ``if TYPE_CHECKING:`` imports are edges too
            names |= _imports(ast.Module(body=node.body, type_ignores=[]), module_level=True)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


def _is_web(name: str) -> bool:
    return name in WEB or name.endswith(".views")


def test_only_the_web_layer_imports_flask_or_werkzeug() -> None:
    offenders = {}
    for name, path in _modules().items():
        if _is_web(name) or name == "context":
            continue
        web = {
            i
            for i in _imports(ast.parse(path.read_text()), module_level=False)
            if i.split(".")[0] in ("flask", "werkzeug")
        }
        if web:
            offenders[name] = sorted(web)
    assert offenders == {}


def test_context_imports_flask_for_its_annotations_only() -> None:
    tree = ast.parse((CENTRAL / "context.py").read_text())
    assert not any(
        i.startswith("flask") for i in _imports(tree, module_level=False) - _type_checking_imports(tree)
    )


def _type_checking_imports(tree: ast.Module) -> set[str]:
    blocks = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    return set().union(
        *(_imports(ast.Module(body=b.body, type_ignores=[]), module_level=True) for b in blocks)
    )


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        imported = _imports(ast.parse(path.read_text()), module_level=True)
        local = {i.removeprefix(PACKAGE + ".") for i in imported if i.startswith(PACKAGE + ".")}
        # ``from secl.central import audit`` names the submodule, not the package's __init__.
        graph[name] = {m for m in local if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(_graph()) == []


def test_no_import_cycles_between_areas() -> None:
    areas: dict[str, set[str]] = {}
    for name, imported in _graph().items():
        if "." not in name:
            continue  # the shared modules at the top of the central
        area = name.split(".")[0]
        areas.setdefault(area, set()).update(i.split(".")[0] for i in imported if "." in i)
    for area in list(areas):
        areas[area].discard(area)
        for other in areas[area]:
            areas.setdefault(other, set())
    assert _cycles(areas) == []


def test_each_area_declares_one_blueprint_in_its_views() -> None:
    declared: dict[str, list[str]] = {}
    for name, path in _modules().items():
        calls = [
            n
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "Blueprint"
        ]
        if calls:
            declared[name] = [ast.unparse(c.args[0]) for c in calls]
    views = {name: blueprints for name, blueprints in declared.items() if name.endswith(".views")}
    assert all(len(blueprints) == 1 for blueprints in views.values()), views
    # Only versions.py declares blueprints outside views: those answering just /hvs/v2, /kbs/v1, /wls/v2 version.
    assert set(declared) - set(views) == {"versions"}


def test_only_the_context_knows_where_the_application_keeps_it() -> None:
    users = [
        name for name, path in _modules().items() if "extensions[" in path.read_text() and name != "context"
    ]
    assert users == []
