"""The ``condition`` expressions of SecL flavor templates: a small XPath subset over a host manifest's JSON.

SecL evaluates each condition with antchfx/jsonquery over the host manifest as JSON and applies a
template when every condition selects at least one node. This module implements exactly the subset the
shipped templates use, with jsonquery's model of JSON, and refuses anything else at compile time (a
condition we cannot evaluate faithfully must not silently match or fail):

- paths from the root: ``//name`` (an element anywhere) then ``/name`` or ``/*`` steps;
- ``//*`` or ``//name`` after a step: descendant-*or-self* elements. This is jsonquery's behaviour, not
  textbook XPath (``a//*`` normally excludes ``a``): antchfx/xpath folds ``descendant-or-self::node()/
  child::*`` into one descendant-or-self step, and SecL's templates (``os_name//*[text()='…']``) rely
  on it to test a leaf's own value;
- one predicate per step: comparisons ``text() = 'literal'`` / ``!=``, or ``./a/*/b/text() = literal``
  (number or string literals), joined with ``and``;
- ``path = literal`` at the top, and ``or`` between whole paths.

The JSON model is jsonquery's: an object member is an element named by its key, an array item an element
with an empty name, and a scalar a leaf whose text is the value as a string (``true``/``false`` for
booleans, shortest decimal for numbers; ``null`` has no text). Comparisons follow XPath's node-set rules:
``=`` holds when any text equals the literal, ``!=`` when any text differs from it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from secl.core.errors import EvidenceError

__all__ = ["Condition", "TemplateConditionError", "compile_condition"]


class TemplateConditionError(EvidenceError):
    """A template condition uses XPath this evaluator does not support, or is not XPath at all."""

    code = "template-condition-unsupported"


_TOKEN = re.compile(
    r"\s*(?:(?P<op>//|/|\[|\]|\(|\)|!=|=|\*|\.)|(?P<str>'[^']*'|\"[^\"]*\")"
    r"|(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_\-]*))"
)


@dataclass(frozen=True)
class _Node:
    """A JSON value as a jsonquery element: its name, children and (for scalars) its text."""

    name: str
    text: str | None
    children: tuple[_Node, ...] = field(default=(), repr=False)

    def descendants_or_self(self) -> Iterator[_Node]:
        yield self
        for child in self.children:
            yield from child.descendants_or_self()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        # Go's strconv.FormatFloat(v, 'f', -1, 64): no exponent, no trailing ".0".
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def _tree(name: str, value: Any) -> _Node:
    if isinstance(value, Mapping):
        return _Node(name, None, tuple(_tree(str(k), v) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return _Node(name, None, tuple(_tree("", v) for v in value))
    return _Node(name, _text(value))


@dataclass(frozen=True)
class _Step:
    name: str | None  # None for "*"
    deep: bool  # reached with "//": descendant-or-self
    predicate: tuple[_Compare, ...] = ()

    def matches(self, node: _Node) -> bool:
        return (self.name is None or node.name == self.name) and all(p.holds(node) for p in self.predicate)


@dataclass(frozen=True)
class _Compare:
    """``relative/path/text() op literal``; an empty path means the node's own text()."""

    path: tuple[str | None, ...]
    op: str
    literal: str | float

    def holds(self, node: _Node) -> bool:
        nodes = [node]
        for name in self.path:
            nodes = [c for n in nodes for c in n.children if name is None or c.name == name]
        texts = [n.text for n in nodes if n.text is not None]
        return any(self._compare(t) for t in texts)

    def _compare(self, text: str) -> bool:
        if isinstance(self.literal, float):
            try:
                value = float(text)
            except ValueError:
                value = math.nan
            equal = value == self.literal
        else:
            equal = text == self.literal
        return equal if self.op == "=" else not equal


@dataclass(frozen=True)
class _Path:
    steps: tuple[_Step, ...]
    compare: _Compare | None = None  # a top-level "path = literal"

    def select(self, root: _Node) -> list[_Node]:
        current = [root]
        for step in self.steps:
            found: list[_Node] = []
            for node in current:
                if step.deep:
                    # From the document node "//" looks at every element below it; after a step, jsonquery
                    # includes the node itself (see the module doc).
                    pool = node.descendants_or_self() if node is not root else _below(root)
                else:
                    pool = iter(node.children)
                found += [n for n in pool if step.matches(n)]
            current = found
        if self.compare is not None:
            current = [n for n in current if self.compare.holds(n)]
        return current


def _below(root: _Node) -> Iterator[_Node]:
    for child in root.children:
        yield from child.descendants_or_self()


@dataclass(frozen=True)
class Condition:
    """A compiled condition: ``matches(doc)`` is true when it selects at least one node of ``doc``."""

    source: str
    paths: tuple[_Path, ...]

    def matches(self, doc: Mapping[str, Any]) -> bool:
        root = _tree("", doc)
        return any(path.select(root) for path in self.paths)


def compile_condition(source: str) -> Condition:
    """Compile one template condition; raise :class:`TemplateConditionError` if it is outside the subset."""
    if not isinstance(source, str) or not source.strip():
        raise TemplateConditionError("a condition must be a non-empty string")
    parser = _Parser(source)
    paths = [parser.path()]
    while parser.accept("or"):
        paths.append(parser.path())
    parser.expect_end()
    return Condition(source, tuple(paths))


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(source):
            if source[pos:].strip() == "":
                break
            match = _TOKEN.match(source, pos)
            if match is None or match.end() == pos:
                self.fail(f"unsupported syntax at {source[pos:]!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.i = 0

    def fail(self, why: str) -> NoReturn:
        raise TemplateConditionError(f"condition {self.source!r}: {why}")

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def accept(self, value: str) -> bool:
        if self.peek() == value:
            self.i += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            self.fail(f"expected {value!r}, found {self.peek()!r}")

    def expect_end(self) -> None:
        if self.peek() is not None:
            self.fail(f"unsupported syntax at {self.peek()!r}")

    def name_test(self) -> str | None:
        if self.accept("*"):
            return None
        if self.i < len(self.tokens) and self.tokens[self.i][0] == "name":
            token = self.tokens[self.i][1]
            if token in ("and", "or", "text"):
                self.fail(f"a step name is required before {token!r}")
            self.i += 1
            return token
        self.fail(f"expected an element name or '*', found {self.peek()!r}")
        raise AssertionError  # unreachable: fail() raises

    def path(self) -> _Path:
        if self.peek() not in ("/", "//"):
            self.fail("paths must start at the root ('/' or '//')")
        steps = []
        while self.peek() in ("/", "//"):
            deep = self.tokens[self.i][1] == "//"
            self.i += 1
            name = self.name_test()
            predicate = self.predicate() if self.accept("[") else ()
            steps.append(_Step(name, deep, predicate))
        compare = None
        if self.peek() in ("=", "!="):
            op = self.tokens[self.i][1]
            self.i += 1
            compare = _Compare((), op, self.literal())
        return _Path(tuple(steps), compare)

    def predicate(self) -> tuple[_Compare, ...]:
        compares = [self.compare()]
        while self.accept("and"):
            compares.append(self.compare())
        self.expect("]")
        return tuple(compares)

    def compare(self) -> _Compare:
        path: list[str | None] = []
        if self.accept("."):
            self.expect("/")
        while self.peek() != "text":
            path.append(self.name_test())
            self.expect("/")
        self.expect("text")
        self.expect("(")
        self.expect(")")
        op = self.peek()
        if op not in ("=", "!="):
            self.fail(f"expected '=' or '!=' after text(), found {op!r}")
        self.i += 1
        return _Compare(tuple(path), str(op), self.literal())

    def literal(self) -> str | float:
        if self.i >= len(self.tokens) or self.tokens[self.i][0] not in ("str", "num"):
            self.fail(f"expected a string or number literal, found {self.peek()!r}")
        kind, value = self.tokens[self.i]
        self.i += 1
        return value[1:-1] if kind == "str" else float(value)
