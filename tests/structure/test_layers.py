"""The package map is data (`[tool.eql.layers]` in pyproject.toml) and the tree keeps to it: every
import of ours goes down the layers, no two modules import each other in a circle (directly or
through others, function-local imports included), and each dependency has its one owner."""

from __future__ import annotations

import tomllib

import pytest

from tests.structure.graph import ROOT, Import, cycles, imports, modules, unit

CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["eql"]
LAYERS: dict[str, list[str]] = CONFIG["layers"]
OWNERS: dict[str, list[str]] = CONFIG["owners"]


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    return imports()


def _allowed(source: str, target: str) -> bool:
    here, there = unit(source), unit(target)
    if here == there:
        return True
    return any(target == a or target.startswith(a + ".") or there == a for a in LAYERS[here])


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
        if unit(i.target) == "eql.cli" and unit(i.source) != "eql.cli"
    ]
    assert wrong == []


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
