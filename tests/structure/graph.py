"""The import graph of the product code, read from the source with `ast` (nothing is imported).

Every import counts: at module level, inside functions (a function-local import hides a cycle, it
does not remove it) and under `TYPE_CHECKING`. `from package import name` is an import of the
submodule `package.name` when there is one, else of `package`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("entities", "eql", "storage", "ingest", "runtime", "server")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (ours) or top-level distribution name (theirs)
    line: int


def modules() -> dict[str, Path]:
    """Every product module by dotted name (a package by its own name, for its __init__)."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_package(name: str, known: dict[str, Path]) -> bool:
    return name in known and known[name].name == "__init__.py"


def imports() -> list[Import]:
    known = modules()
    out: list[Import] = []
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        here = name if _is_package(name, known) else name.rpartition(".")[0]
        for node in ast.walk(tree):
            for target in _targets(node, here, known):
                if target != name:
                    out.append(Import(name, target, getattr(node, "lineno", 0)))
    return out


def _targets(node: ast.AST, here: str, known: dict[str, Path]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield _ours(alias.name, known)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = here.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            yield sub if sub in known else _ours(base, known)


def _ours(name: str, known: dict[str, Path]) -> str:
    """`name` itself when it is ours (or its nearest module of ours), else its top-level name."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return name.split(".")[0]


TOP_FLOORS = ("eql.cli", "eql.client")  # the command and the library: layers apart from `eql`


def unit(module: str) -> str:
    """The layer a module belongs to: its top-level package, `eql.cli` and `eql.client` apart
    from `eql`."""
    for top in TOP_FLOORS:
        if module == top or module.startswith(top + "."):
            return top
    return module.split(".")[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found
