"""Spans: every node points at its own text, inside its parent, with correct line/column."""

from __future__ import annotations

from typing import Any

import pytest

from eql.syntax import ast, children, format_expr, parse
from tests.syntax.corpus import CORPUS


def all_nodes(root: Any) -> list[Any]:
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(children(node))
    return out


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_spans_are_nested_and_inside_the_text(name: str) -> None:
    text = CORPUS[name]
    root = parse(text)
    stack: list[tuple[Any, Any]] = [(root, None)]
    while stack:
        node, parent = stack.pop()
        span = node.span
        assert 0 <= span.start <= span.end <= len(text), node
        assert span.start < span.end, node  # every node covers some text
        if parent is not None:
            assert parent.span.start <= span.start and span.end <= parent.span.end, (node, parent)
        stack.extend((child, node) for child in children(node))


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_leaf_spans_cover_exactly_their_text(name: str) -> None:
    text = CORPUS[name]
    for node in all_nodes(parse(text)):
        piece = node.span.text(text)
        if isinstance(node, ast.Ident):
            assert piece == node.name or piece == "`" + node.name.replace("`", "``") + "`"
        elif isinstance(node, ast.Path):
            parts = [p.span.text(text) for p in node.parts]
            assert piece.strip("( )") == ".".join(parts)
        elif isinstance(node, ast.Param):
            assert piece == "$" + node.name
        elif isinstance(node, ast.IntLiteral):
            assert int(piece) == node.value
        elif isinstance(node, ast.StringLiteral):
            assert piece == "'" + node.value.replace("'", "''") + "'"
        elif isinstance(node, (ast.Call, ast.InList, ast.Case, ast.AsOfValue)):
            assert piece.endswith(")") or piece.upper().endswith("END")
            if isinstance(node, ast.Call):
                assert piece.startswith(node.name.span.text(text))


def test_path_span_is_the_path_text() -> None:
    text = "FIND users\nWHERE home_store.city = 'Shanghai'"
    stmt = parse(text)
    assert isinstance(stmt, ast.Find) and isinstance(stmt.where, ast.Compare)
    p = stmt.where.left
    assert isinstance(p, ast.Path)
    assert p.span.text(text) == "home_store.city"
    assert [part.span.text(text) for part in p.parts] == ["home_store", "city"]
    assert p.span.line_col(text) == (2, 7)
    assert p.parts[1].span.line_col(text) == (2, 18)


def test_spans_of_composite_nodes() -> None:
    text = (
        "FIND users\n"
        "WHERE NOT DID visit DURING LAST 7 DAYS\n"
        "  AND count(purchase WHERE amount > 10) >= 3\n"
        "RETURN (value_tier AS OF '2026-10-01') AS old_tier\n"
        "ORDER BY old_tier DESC NULLS LAST\n"
        "LIMIT 5 -- trailing comment"
    )
    stmt = parse(text)
    assert isinstance(stmt, ast.Find)
    assert stmt.span.text(text) == text[: text.index(" -- trailing")]
    where = stmt.where
    assert isinstance(where, ast.Logical)
    not_did, compare = where.operands
    assert not_did.span.text(text) == "NOT DID visit DURING LAST 7 DAYS"
    assert isinstance(not_did, ast.Not) and isinstance(not_did.operand, ast.Did)
    assert not_did.operand.window is not None
    assert not_did.operand.window.span.text(text) == "LAST 7 DAYS"
    assert compare.span.text(text) == "count(purchase WHERE amount > 10) >= 3"
    assert compare.span.line_col(text) == (3, 7)
    ret = stmt.returns[0]
    assert ret.span.text(text) == "(value_tier AS OF '2026-10-01') AS old_tier"
    assert ret.expr.span.text(text) == "(value_tier AS OF '2026-10-01')"
    assert stmt.order_by[0].span.text(text) == "old_tier DESC NULLS LAST"
    assert stmt.limit is not None and stmt.limit.span.text(text) == "5"


def test_parenthesised_expression_span_includes_the_parentheses() -> None:
    text = "FIND u WHERE x = ((a + b)) * c"
    stmt = parse(text)
    assert isinstance(stmt, ast.Find) and isinstance(stmt.where, ast.Compare)
    product = stmt.where.right
    assert isinstance(product, ast.Arith)
    assert product.span.text(text) == "((a + b)) * c"
    assert product.left.span.text(text) == "((a + b))"
    assert isinstance(product.left, ast.Arith)
    assert product.left.left.span.text(text) == "a"


def test_expression_text_matches_printer_for_simple_expressions() -> None:
    text = "FIND u WHERE a.b >= 3 AND c IN (1, 2) AND d IS NOT NULL"
    stmt = parse(text)
    assert isinstance(stmt, ast.Find) and isinstance(stmt.where, ast.Logical)
    for operand in stmt.where.operands:
        assert operand.span.text(text) == format_expr(operand)


def test_typed_literal_span_includes_keyword() -> None:
    text = "FIND u WHERE d = date '2026-01-01'"
    stmt = parse(text)
    assert isinstance(stmt, ast.Find) and isinstance(stmt.where, ast.Compare)
    assert stmt.where.right.span.text(text) == "date '2026-01-01'"
