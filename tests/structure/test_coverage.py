"""Every name and node has its handler: each function of the registry an emitter, each aggregate
an emitter, each syntax expression a binder, and each walker over the IRs (the emitter, the
printer, the lowering, the plan walkers) ends its `match` in `assert_never`, so that mypy (in
`make check`) fails on a node type added without its case."""

from __future__ import annotations

import ast
from typing import get_args

import pytest

from eql import functions
from eql.binder import bound, dispatch
from eql.planner import to_datafusion
from eql.syntax import ast as syntax
from tests.structure.graph import ROOT

# module -> the functions whose `match` over an IR must be exhaustive
WALKERS = {
    "eql/planner/to_datafusion.py": ["expr", "_binary", "aggregate", "emit", "table_name"],
    "eql/planner/explain.py": ["bexpr", "lexpr", "format_plan"],
    "eql/planner/logical.py": ["tables", "output_ids"],
    "eql/planner/lower.py": ["expr"],
    "eql/planner/rules/walk.py": ["inputs", "expr_children"],
    "eql/binder/bound.py": ["children"],
    "runtime/engine.py": ["_register_one"],
}


def test_every_function_has_an_emitter() -> None:
    special = {"date_part"}  # matched by its own case (its part is a literal)
    assert set(functions.REGISTRY) - special <= set(to_datafusion.FUNCTIONS)
    assert special <= set(functions.REGISTRY)


def test_every_aggregate_has_a_bound_function() -> None:
    assert {f.value for f in bound.AggFunc} == set(functions.AGGREGATES)


def test_every_syntax_expression_has_a_binder() -> None:
    assert set(get_args(syntax.Expr)) <= dispatch.handled()


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name]
    assert found, f"no function {name}"
    return found[0]


def _ends_in_assert_never(body: list[ast.stmt]) -> bool:
    last = body[-1]
    if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call):
        func = last.value.func
        return isinstance(func, ast.Name) and func.id == "assert_never"
    if isinstance(last, ast.Match):
        final = last.cases[-1]
        wildcard = isinstance(final.pattern, ast.MatchAs) and final.pattern.pattern is None
        return wildcard and _ends_in_assert_never(final.body)
    return False


@pytest.mark.parametrize("module", sorted(WALKERS))
def test_walkers_end_in_assert_never(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    for name in WALKERS[module]:
        fn = _function(tree, name)
        matches = [s for s in fn.body if isinstance(s, ast.Match)]
        assert matches, f"{module}: {name} has no match"
        at = fn.body.index(matches[-1])
        after = fn.body[at + 1 : at + 2]  # the statement after the match, if any
        ok = _ends_in_assert_never([matches[-1]]) or (after and _ends_in_assert_never(after))
        assert ok, f"{module}: {name} does not end its match in assert_never"
