"""The query corpus (tests/eql/corpus/*.eql) with a snapshot per stage.

For every query: the formatted AST, the bound IR, the logical plan and the result (CSV over the
session's demo store, users=300 seed=7, reference time 2026-11-01) or, for EXPLAIN, the explain
text. A query's parameters are given in a `-- params: {json}` comment line.
Update every snapshot with `EQL_UPDATE_SNAPSHOTS=1 python -m pytest tests/eql`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from eql.compiler import Compiled, compile_query, explain_text
from eql.planner.explain import format_bound, format_plan
from eql.syntax import format_statement, parameters, parse, same_shape
from runtime.engine import Engine
from tests.eql.helpers import CORPUS_DIR, NOW, SNAPSHOT_DIR, result_csv
from tests.eql.snapshots import UPDATE, check_snapshot

CORPUS = sorted(CORPUS_DIR.glob("*.eql"))
STAGES = ("ast", "bound", "plan", "result")
SUFFIX = {
    "ast": ".ast.eql",
    "bound": ".bound.txt",
    "plan": ".plan.txt",
    "result": ".result.csv",
    "explain": ".explain.txt",
}


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    params: dict[str, Any]


def load(path: Path) -> Case:
    text = path.read_text(encoding="utf-8")
    params: dict[str, Any] = {}
    for line in text.splitlines():
        m = re.match(r"--\s*params:\s*(\{.*\})\s*$", line)
        if m:
            params = json.loads(m.group(1))
    return Case(path.stem, text, params)


CASES = [load(p) for p in CORPUS]


@cache
def _compiled(name: str) -> Compiled:
    case = next(c for c in CASES if c.name == name)
    # the compiler needs only the schema; a store-free compile keeps this cache session-wide
    from entities import parse_schema
    from tests.eql.helpers import RETAIL_SCHEMA

    schema = parse_schema(RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml")
    return compile_query(case.text, schema, case.params, NOW)


def _snapshot_path(name: str, stage: str) -> Path:
    return SNAPSHOT_DIR / f"{name}{SUFFIX[stage]}"


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_stage_snapshot(case: Case, stage: str, demo_engine: Engine) -> None:
    compiled = _compiled(case.name)
    if stage == "ast":
        actual = format_statement(parse(case.text))
    elif stage == "bound":
        actual = format_bound(compiled.bound)
    elif stage == "plan":
        actual = format_plan(compiled.plan)
    elif compiled.explain_stage is not None:
        stage = "explain"
        actual = explain_text(compiled, compiled.explain_stage)
    else:
        table = demo_engine.run(compiled)
        assert "__id" not in table.column_names
        actual = result_csv(table, keep_order=bool(compiled.bound.order_by))
    check_snapshot(_snapshot_path(case.name, stage), actual)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bound_parameters_are_the_texts(case: Case) -> None:
    """`BoundQuery.parameters` (what the binder bound) is every `$name` of the text."""
    compiled = _compiled(case.name)
    assert compiled.bound.parameters == parameters(compiled.statement)
    assert compiled.bound.parameters <= set(case.params)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_print_parse_round_trip(case: Case) -> None:
    """EQL-2 on the corpus: the formatted text parses back to the same AST, and is a fixpoint."""
    stmt = parse(case.text)
    printed = format_statement(stmt)
    again = parse(printed)
    assert same_shape(stmt, again), printed
    assert format_statement(again) == printed


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_formatted_text_gives_the_same_plan(case: Case) -> None:
    """Compiling the formatted text gives the same logical plan as the original text."""
    from entities import parse_schema
    from tests.eql.helpers import RETAIL_SCHEMA

    schema = parse_schema(RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml")
    printed = format_statement(parse(case.text))
    again = compile_query(printed, schema, case.params, NOW)
    assert format_plan(again.plan) == format_plan(_compiled(case.name).plan)


def test_explain_through_the_engine_includes_datafusion(demo_engine: Engine) -> None:
    explained = [c for c in CASES if _compiled(c.name).explain_stage is not None]
    assert explained, "the corpus has EXPLAIN queries"
    for case in explained:
        compiled = _compiled(case.name)
        text = demo_engine.explain(compiled, "all")
        for header in ("-- ast", "-- bound", "-- logical plan", "-- datafusion"):
            assert header in text, (case.name, header)
        if compiled.explain_stage == "plan":
            only = demo_engine.explain(compiled, "plan")
            assert only.startswith("-- logical plan") and "-- bound" not in only


FEATURES = {
    "two-hop path": r"home_store\.manager\.name",
    "count": r"\bcount\(",
    "sum": r"\bsum\(",
    "avg": r"\bavg\(",
    "min": r"\bmin\(",
    "max": r"\bmax\(",
    "first": r"\bfirst\(",
    "last": r"\blast\(",
    "DISTINCT": r"\(DISTINCT ",
    "WHERE inside an aggregate": r"\(\w+(\.\w+)* WHERE ",
    "DURING LAST": r"DURING LAST \d+ DAYS",
    "absolute window": r"DURING '[0-9-]+' TO '",
    "DID": r"\bDID \w+",
    "NOT DID": r"NOT DID ",
    "two-hop aggregate": r"members\.purchase\.",
    "stream from stores": r"FIND stores[\s\S]*count\(visit\)",
    "stream from products": r"FIND products[\s\S]*count\(view\)",
    "stream from employees": r"FIND employees[\s\S]*count\(purchase\)",
    "GROUP BY": r"GROUP BY ",
    "FIND EVENTS grouped": r"FIND EVENTS \w+[^;]*\n[\s\S]*GROUP BY",
    "CASE": r"\bCASE\b",
    "IN": r"\bIN \(",
    "BETWEEN": r"\bBETWEEN\b",
    "LIKE": r"\bLIKE\b",
    "coalesce": r"\bcoalesce\(",
    "day": r"\bday\(",
    "week": r"\bweek\(",
    "month": r"\bmonth\(",
    "year": r"\byear\(",
    "days_since": r"\bdays_since\(",
    "string functions": r"\bupper\([\s\S]*substr\(",
    "parameters": r"\$\w+",
    "EXPLAIN": r"^EXPLAIN",
    "AS OF": r"AS OF ",
    "ORDER BY": r"ORDER BY ",
    "LIMIT": r"LIMIT ",
}


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_corpus_covers_feature(feature: str) -> None:
    pattern = re.compile(FEATURES[feature], re.MULTILINE)
    assert any(pattern.search(c.text) for c in CASES), f"no corpus query uses {feature}"


def test_no_stale_snapshots() -> None:
    names = {c.name for c in CASES}
    stale = []
    for path in SNAPSHOT_DIR.iterdir():
        stem = path.name.split(".", 1)[0]
        if stem not in names:
            stale.append(path)
    if UPDATE:
        for path in stale:
            path.unlink()
        return
    assert not stale, f"snapshots without a corpus query: {[p.name for p in stale]}"
