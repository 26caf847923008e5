"""Generic helpers over AST nodes: children, depth, the parameters a statement names, span
stripping for structural comparison.

May import only the standard library, eql.diagnostics and eql.syntax.ast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, TypeVar

from eql.diagnostics import Span
from eql.syntax import ast

__all__ = ["NO_SPAN", "children", "first_too_deep", "parameters", "same_shape", "strip_spans"]

NO_SPAN = Span(0, 0)

_NODE_TYPES: frozenset[type] = frozenset(
    cls
    for cls in vars(ast).values()
    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == ast.__name__
)
_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls) if f.name != "span") for cls in _NODE_TYPES
}

N = TypeVar("N")


def is_node(x: object) -> bool:
    return type(x) in _NODE_TYPES


def children(node: object) -> Iterator[Any]:
    """The direct child nodes, in field order."""
    for name in _FIELDS[type(node)]:
        v = getattr(node, name)
        if type(v) is tuple:
            for item in v:
                if type(item) in _NODE_TYPES:
                    yield item
        elif type(v) in _NODE_TYPES:
            yield v


def first_too_deep(root: object, limit: int) -> Any | None:
    """The first node found deeper than `limit` levels (the root is level 1), else None.

    Iterative, so it is safe on trees of any depth.
    """
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return node
        stack.extend((child, depth + 1) for child in children(node))
    return None


def parameters(root: object) -> frozenset[str]:
    """The names (without `$`) of every parameter the tree refers to, anywhere in it: a caller
    can tell which of the values it was given the statement never reads."""
    found: set[str] = set()
    stack: list[object] = [root]
    while stack:
        node = stack.pop()
        if type(node) is ast.Param:
            found.add(node.name)
        stack.extend(children(node))
    return frozenset(found)


def strip_spans(node: N) -> N:
    """A copy of the tree with every span set to `NO_SPAN`, to compare trees ignoring positions."""
    changes: dict[str, Any] = {"span": NO_SPAN}
    for name in _FIELDS[type(node)]:
        v = getattr(node, name)
        if type(v) is tuple:
            changes[name] = tuple(strip_spans(x) if type(x) in _NODE_TYPES else x for x in v)
        elif type(v) in _NODE_TYPES:
            changes[name] = strip_spans(v)
    return dataclasses.replace(node, **changes)  # type: ignore[type-var]


def same_shape(left: object, right: object) -> bool:
    """Structural equality ignoring spans."""
    return strip_spans(left) == strip_spans(right)
