"""EQL-2: print/parse round trip. `parse(format_statement(ast)) == ast`, ignoring spans."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from eql.diagnostics import EqlError
from eql.syntax import ast, format_expr, format_statement, parse, strip_spans
from tests.syntax import strategies
from tests.syntax.corpus import CORPUS

EXAMPLES = int(os.environ.get("EQL_ROUNDTRIP_EXAMPLES", "400"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def roundtrip(stmt: ast.Statement) -> None:
    text = format_statement(stmt)
    try:
        again = parse(text)
    except EqlError as e:  # pragma: no cover - shows the printed text on failure
        pytest.fail(f"printed text does not parse:\n{text}\n{e.render()}")
    assert strip_spans(again) == strip_spans(stmt), text
    assert format_statement(again) == text  # printing is a fixpoint


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_round_trips(name: str) -> None:
    roundtrip(parse(CORPUS[name]))


@SETTINGS
@given(strategies.statements())
def test_generated_statements_round_trip(stmt: ast.Statement) -> None:
    roundtrip(stmt)


@SETTINGS
@given(strategies.exprs(max_leaves=20))
def test_generated_expressions_round_trip(expr: ast.Expr) -> None:
    stmt = ast.Find(ast.Ident("users", strategies.S), expr, (), (), (), None, None, strategies.S)
    roundtrip(stmt)
    assert format_expr(expr) in format_statement(stmt)


def test_printer_output_is_canonical() -> None:
    text = (
        "find users where a=1 and not did visit during last 1 days and x<>2 "
        "return count(*) as n, f(a,b) order by n asc nulls first limit 3"
    )
    assert format_statement(parse(text)) == (
        "FIND users\n"
        "WHERE a = 1 AND NOT DID visit DURING LAST 1 DAY AND x != 2\n"
        "RETURN count(*) AS n, f(a, b)\n"
        "ORDER BY n NULLS FIRST\n"
        "LIMIT 3"
    )


def test_printer_quotes_names_that_need_it() -> None:
    stmt = parse("FIND `events` RETURN `in`, `a b`.`x``y`, `funnel`, x AS `of`, y AS `where`")
    text = format_statement(stmt)
    assert text == ("FIND `events`\nRETURN `in`, `a b`.`x``y`, `funnel`, x AS `of`, y AS `where`")


def test_printer_adds_parentheses_only_where_needed() -> None:
    cases = {
        "a - (b - c)": "a - (b - c)",
        "(a - b) - c": "a - b - c",
        "-(a + b) * c": "-(a + b) * c",
        "- (-a)": "- -a",
        "(a = b) = (c = d)": "(a = b) = (c = d)",
        "NOT (NOT a)": "NOT NOT a",
        "a AND (b AND c)": "a AND (b AND c)",
        "(a AND b) AND c": "(a AND b) AND c",
        "a OR (b AND c)": "a OR b AND c",
        "(a OR b) AND c": "(a OR b) AND c",
        "(DID x) = TRUE": "(DID x) = TRUE",
    }
    for src, printed in cases.items():
        stmt = parse(f"FIND u WHERE {src}")
        assert isinstance(stmt, ast.Find) and stmt.where is not None
        assert format_expr(stmt.where) == printed


def test_did_without_window_before_a_call_window_gets_parentheses() -> None:
    stmt = parse("FIND u RETURN count(members WHERE (DID purchase) DURING LAST 30 DAYS)")
    text = format_statement(stmt)
    assert "count(members WHERE (DID purchase) DURING LAST 30 DAYS)" in text
    roundtrip(stmt)
