"""The package map is data (`[tool.eql.layers]` in pyproject.toml) and the tree keeps to it: every
import of ours goes down the layers, no two modules import each other in a circle (directly or
through others, function-local imports included), and each dependency has its one owner.

One edge goes up, and only this one: `eql/__init__.py` imports `eql.client` inside its module
`__getattr__` (`eql.connect`, looked up on first use), so that `import eql` stays cheap and the
compiler never loads the runtime when it is imported (`LAZY`; checked to stay inside that
function). Otherwise nothing imports the top floors, `eql.cli` and `eql.client`."""

from __future__ import annotations

import ast
import tomllib

import pytest

from tests.structure.graph import ROOT, Import, cycles, imports, modules, unit

CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["eql"]
LAYERS: dict[str, list[str]] = CONFIG["layers"]
OWNERS: dict[str, list[str]] = CONFIG["owners"]
# (importing module, imported module): the edges up the layers allowed, each inside a function
LAZY = {("eql", "eql.client"): "__getattr__"}


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    return imports()


def _allowed(source: str, target: str) -> bool:
    here, there = unit(source), unit(target)
    if here == there or (source, target) in LAZY:
        return True
    # a layer named covers its modules, not another layer's under its name (`eql` is not
    # `eql.client`)
    return any(
        unit(a) == there and (target == a or target.startswith(a + ".") or there == a)
        for a in LAYERS[here]
    )


def test_every_module_is_in_a_layer() -> None:
    assert {unit(m) for m in modules()} <= set(LAYERS)


def test_imports_go_down_the_layers(graph: list[Import]) -> None:
    known = modules()
    wrong = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in graph
        if i.target in known and not _allowed(i.source, i.target)
    ]
    assert wrong == []


def test_nothing_imports_the_cli(graph: list[Import]) -> None:
    wrong = [
        f"{i.source} imports {i.target}"
        for i in graph
        if unit(i.target) in ("eql.cli", "eql.client")
        and unit(i.source) != unit(i.target)
        and (i.source, i.target) not in LAZY
    ]
    assert wrong == []


def _function_of(tree: ast.Module, line: int) -> str | None:
    """The name of the (outermost) function holding `line`, if any."""
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if node.lineno <= line <= (node.end_lineno or node.lineno):
            return node.name
    return None


def test_the_lazy_edges_stay_lazy(graph: list[Import]) -> None:
    """Each edge of `LAZY` is imported only inside its function, and is there (the exception
    is not a dead letter)."""
    known = modules()
    seen = set()
    for i in graph:
        if (i.source, i.target) in LAZY:
            tree = ast.parse(known[i.source].read_text(encoding="utf-8"))
            assert _function_of(tree, i.line) == LAZY[(i.source, i.target)], i
            seen.add((i.source, i.target))
    assert seen == set(LAZY)


def test_no_import_cycles(graph: list[Import]) -> None:
    known = modules()
    edges: dict[str, set[str]] = {}
    for i in graph:
        if i.target in known:
            edges.setdefault(i.source, set()).add(i.target)
    assert cycles(edges) == []


def test_each_dependency_has_its_owner(graph: list[Import]) -> None:
    wrong = [
        f"{i.source} imports {i.target}"
        for i in graph
        if i.target in OWNERS
        and not any(i.source == o or i.source.startswith(o + ".") for o in OWNERS[i.target])
    ]
    assert wrong == []


def test_the_checks_see_what_they_check() -> None:
    """The checks would catch the problems they exist for (on made-up graphs)."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert not _allowed("eql.cli.serve_cmds", "eql.binder.bound")  # the CLI reading the IR
    assert not _allowed("eql.planner.lower", "server.app")  # an arrow back up the layers
    assert not _allowed("server.queries", "eql.planner.logical")  # the server reading the plan
    assert not _allowed("storage.store", "runtime.engine")
    assert _allowed("runtime.engine", "eql.compiler")
    assert not _allowed("runtime.session", "eql.client.local")  # the runtime calling up
    assert not _allowed("eql.compiler", "eql.client")  # only the package itself, lazily
    assert not _allowed("eql.client.local", "eql.binder.bound")  # the library reading the IR
    assert unit("eql.client.remote") == "eql.client" and unit("eql.cli.main") == "eql.cli"
