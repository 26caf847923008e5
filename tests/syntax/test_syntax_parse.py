"""Parsing: the sketch's examples give the expected ASTs; every form of the grammar parses."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from eql.syntax import ast, parse, same_shape, strip_spans
from tests.syntax.builders import (
    S,
    and_,
    arith,
    call,
    cmp,
    days,
    did,
    find,
    i,
    ident,
    item,
    not_,
    or_,
    param,
    path,
    s,
)
from tests.syntax.corpus import CORPUS, SKETCH

STATEMENT_TYPES = (
    ast.Find,
    ast.FindEvents,
    ast.Explain,
    ast.ExplainMembership,
    ast.DefineTag,
    ast.DefineSegment,
    ast.DefineClusters,
    ast.Refresh,
    ast.Drop,
    ast.Describe,
    ast.Show,
)


def where_of(text: str) -> ast.Expr:
    stmt = parse(text)
    assert isinstance(stmt, ast.Find)
    assert stmt.where is not None
    return strip_spans(stmt.where)


def returns_of(text: str) -> list[ast.Expr]:
    stmt = parse(text)
    assert isinstance(stmt, (ast.Find, ast.FindEvents))
    return [strip_spans(r.expr) for r in stmt.returns]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_parses(name: str) -> None:
    stmt = parse(CORPUS[name])
    assert isinstance(stmt, STATEMENT_TYPES)


def test_sketch_users_in_shanghai() -> None:
    expected = find(
        "users",
        where=and_(
            cmp("=", path("home_store.city"), s("Shanghai")),
            cmp(">=", call("count", path("purchase"), window=days(30)), i(3)),
        ),
        returns=(
            item(path("id")),
            item(path("name")),
            item(call("sum", path("purchase.amount"), window=days(30)), "spend_30d"),
            item(call("days_since", call("last", path("purchase.time"))), "recency"),
        ),
        order_by=(ast.OrderItem(path("spend_30d"), ast.SortDirection.DESC, None, S),),
        limit=i(100),
        as_of=s("2026-11-01"),
    )
    assert strip_spans(parse(SKETCH["users_in_shanghai"])) == expected


def test_sketch_filters_inside_aggregates() -> None:
    assert where_of(SKETCH["filters_inside_aggregates"]) == and_(
        cmp(
            ">",
            call(
                "sum",
                path("purchase.amount"),
                filter=cmp("=", path("channel"), s("app")),
                window=days(90),
            ),
            i(500),
        ),
        did("visit", window=days(7)),
        not_(did("coupon_use", window=days(30))),
    )


def test_sketch_stores_ranked_nested_aggregate() -> None:
    idle = returns_of(SKETCH["stores_ranked"])[3]
    assert idle == call(
        "count",
        path("members"),
        filter=cmp("=", call("count", path("purchase"), window=days(30)), i(0)),
    )


def test_sketch_grouping() -> None:
    stmt = strip_spans(parse(SKETCH["grouping_entities"]))
    assert isinstance(stmt, ast.Find)
    assert stmt.where == ast.InSegment(ident("lapsed_vip"), S)
    assert stmt.group_by == (path("home_store.region"),)
    assert stmt.returns[1] == item(call("count"), "users")
    assert stmt.returns[2].expr == call("avg", call("sum", path("purchase.amount")))


def test_sketch_event_centric() -> None:
    stmt = strip_spans(parse(SKETCH["event_centric"]))
    assert isinstance(stmt, ast.FindEvents)
    assert stmt.stream == ident("purchase")
    assert stmt.during == days(7)
    assert stmt.where == cmp("=", path("store.city"), param("city"))
    assert stmt.group_by == (call("day", path("time")), path("product.category"))
    assert stmt.returns[3] == item(call("count", path("user"), distinct=True), "buyers")


def test_sketch_value_tier_case() -> None:
    stmt = strip_spans(parse(SKETCH["value_tier_tag"]))
    assert isinstance(stmt, ast.DefineTag)
    assert (stmt.name, stmt.entity) == (ident("value_tier"), ident("users"))
    assert isinstance(stmt.expr, ast.Case)
    assert stmt.expr.operand is None
    assert [w.result for w in stmt.expr.whens] == [s("high"), s("mid")]
    assert stmt.expr.else_ == s("low")


def test_sketch_rfm_accepts_comma_before_window() -> None:
    stmt = strip_spans(parse(SKETCH["rfm_tag"]))
    assert isinstance(stmt, ast.DefineTag)
    assert stmt.expr == call("rfm", path("purchase"), path("amount"), window=days(365))
    same = parse("DEFINE TAG rfm ON users AS rfm(purchase, amount DURING LAST 365 DAYS)")
    assert same_shape(same, stmt)


def test_sketch_clusters() -> None:
    stmt = strip_spans(parse(SKETCH["clusters"]))
    assert isinstance(stmt, ast.DefineClusters)
    assert (stmt.k, stmt.seed) == (i(4), i(7))
    assert [f.name.name for f in stmt.features] == ["recency", "frequency", "monetary"]
    assert stmt.features[1].expr == call("count", path("purchase"), window=days(180))


def test_sketch_segment_and_refresh() -> None:
    seg = strip_spans(parse(SKETCH["segment"]))
    assert isinstance(seg, ast.DefineSegment)
    assert seg.where == and_(
        cmp(">", call("sum", path("purchase.amount"), window=days(365)), i(1000)),
        not_(did("purchase", window=days(60))),
    )
    ref = strip_spans(parse(SKETCH["refresh"]))
    assert ref == ast.Refresh(ast.ObjectKind.SEGMENT, ident("lapsed_vip"), S)


def test_sketch_segments_and_explain_and_history() -> None:
    assert where_of(SKETCH["tag_and_segments"]) == and_(
        cmp("=", path("value_tier"), s("high")),
        ast.InSegment(ident("lapsed_vip"), S),
        not_(ast.InSegment(ident("opted_out"), S)),
    )
    explain = strip_spans(parse(SKETCH["explain"]))
    assert isinstance(explain, ast.Explain)
    assert explain.stage is None
    assert isinstance(explain.statement, ast.Find)
    assert where_of(SKETCH["tag_history"]) == cmp(
        "=", ast.AsOfValue(path("value_tier"), s("2026-10-01"), S), s("high")
    )


def test_did_takes_the_window_inside_an_aggregate_filter() -> None:
    greedy, on_count = returns_of(CORPUS["did_in_aggregate_filter"])
    assert greedy == call("count", path("members"), filter=did("purchase", window=days(30)))
    assert on_count == call("count", path("members"), filter=did("purchase"), window=days(30))


def test_call_modifier_order_is_free() -> None:
    a = parse("FIND users RETURN sum(x WHERE y DURING LAST 1 DAY)")
    b = parse("FIND users RETURN sum(x DURING LAST 1 DAY WHERE y)")
    assert same_shape(a, b)


def test_call_forms() -> None:
    exprs = returns_of(CORPUS["call_forms"])
    assert exprs[0] == call("count")
    assert exprs[1] == call("count", star=True)
    assert exprs[2] == call("count", star=True, filter=cmp(">", path("amount"), i(3)))
    assert exprs[3] == call("f", path("a"), path("b"), path("c"))
    assert exprs[5] == call(
        "sum",
        path("purchase.amount"),
        filter=path("x"),
        window=ast.LastWindow(param("n"), ast.TimeUnit.MONTH, S),
    )


def test_precedence_and_flat_chains() -> None:
    assert where_of("FIND u WHERE a OR b AND c") == or_(path("a"), and_(path("b"), path("c")))
    assert where_of("FIND u WHERE a AND b AND c") == and_(path("a"), path("b"), path("c"))
    assert where_of("FIND u WHERE (a AND b) AND c") == and_(and_(path("a"), path("b")), path("c"))
    assert where_of("FIND u WHERE NOT a = b") == not_(cmp("=", path("a"), path("b")))
    assert where_of("FIND u WHERE x = a - b - c") == cmp(
        "=", path("x"), arith("-", arith("-", path("a"), path("b")), path("c"))
    )
    assert where_of("FIND u WHERE x = -a * b + c % d") == cmp(
        "=",
        path("x"),
        arith(
            "+",
            arith("*", ast.Negate(path("a"), S), path("b")),
            arith("%", path("c"), path("d")),
        ),
    )


def test_predicates() -> None:
    w = where_of(CORPUS["predicates"])
    assert isinstance(w, ast.Logical)
    ops = w.operands
    assert ops[0] == ast.InList(path("x"), (i(1), i(2)), True, S)
    assert ops[1] == ast.InParam(path("y"), param("ids"), False, S)
    assert ops[2] == ast.InParam(path("z"), param("bad"), True, S)
    assert ops[3] == ast.Between(path("w"), i(1), i(5), True, S)
    assert ops[4] == ast.Like(path("v"), s("a%"), True, S)
    assert ops[5] == cmp("!=", path("u"), i(3))
    assert ops[6] == cmp("!=", path("t"), i(4))
    assert ops[8] == cmp(">", path("r"), ast.Negate(i(6), S))


def test_literals_are_typed_and_exact() -> None:
    w = where_of(CORPUS["literals"])
    assert isinstance(w, ast.Logical)
    values = [op.right for op in w.operands if isinstance(op, ast.Compare)]
    assert values[0] == i(1)
    dec = values[1]
    assert isinstance(dec, ast.DecimalLiteral)
    assert dec.value == Decimal("123.45") and str(dec.value) == "123.45"
    assert values[2] == s("it's")
    assert values[3] == ast.BoolLiteral(True, S)
    assert values[4] == ast.BoolLiteral(False, S)
    assert values[5] == ast.DateLiteral(date(2026, 1, 1), S)
    assert values[6] == ast.TimestampLiteral(datetime(2026, 1, 1, 10, tzinfo=UTC), S)
    assert values[7] == param("p")
    assert str(strip_spans(values[8]).value) == "0.000001"  # type: ignore[union-attr]
    assert ast.IsNull(path("f"), False, S) in w.operands
    assert ast.IsNull(path("g"), True, S) in w.operands


def test_decimal_keeps_its_digits() -> None:
    (value,) = returns_of("FIND u RETURN 0.10")
    assert isinstance(value, ast.DecimalLiteral)
    assert str(value.value) == "0.10"


def test_timestamp_offsets_are_converted_to_utc() -> None:
    w = where_of(CORPUS["timestamp_offset"])
    assert isinstance(w, ast.Compare)
    assert w.right == ast.TimestampLiteral(datetime(2026, 1, 1, 0, 0, tzinfo=UTC), S)


def test_keywords_are_case_insensitive_names_are_kept() -> None:
    stmt = strip_spans(parse(CORPUS["keywords_case"]))
    assert isinstance(stmt, ast.Find)
    assert stmt.entity == ident("Users")
    assert stmt.returns == (item(path("Z"), "w"),)
    assert stmt.order_by[0].direction is ast.SortDirection.DESC


def test_soft_keywords_are_names_where_no_keyword_fits() -> None:
    stmt = strip_spans(parse(CORPUS["soft_keywords"]))
    assert isinstance(stmt, ast.Find)
    assert [r.alias.name for r in stmt.returns if r.alias] == ["day", "last", "desc"]
    assert stmt.returns[0].expr == call("day", path("time"))
    assert stmt.returns[3].expr == path("date")
    assert stmt.returns[4].expr == path("in")
    assert stmt.returns[5].expr == path("events.where")


def test_quoted_names() -> None:
    stmt = strip_spans(parse(CORPUS["quoted_names"]))
    assert isinstance(stmt, ast.Find)
    assert stmt.entity == ident("user table")
    assert stmt.where == cmp("=", path("odd`name"), i(1))
    assert stmt.returns == (item(path("x y"), "select"),)


def test_order_limit_as_of_defaults_and_params() -> None:
    stmt = strip_spans(parse(CORPUS["find_all_clauses"]))
    assert isinstance(stmt, ast.Find)
    assert stmt.order_by == (
        ast.OrderItem(path("n"), ast.SortDirection.DESC, ast.NullsOrder.LAST, S),
        ast.OrderItem(path("city"), ast.SortDirection.ASC, ast.NullsOrder.FIRST, S),
    )
    assert stmt.limit == param("top")
    assert stmt.as_of == param("t")
    plain = strip_spans(parse("FIND u ORDER BY x"))
    assert isinstance(plain, ast.Find)
    assert plain.order_by == (ast.OrderItem(path("x"), ast.SortDirection.ASC, None, S),)


@pytest.mark.parametrize(
    ("text", "stage"),
    [
        ("EXPLAIN FIND u", None),
        ("EXPLAIN AST FIND u", ast.ExplainStage.AST),
        ("explain bound FIND u", ast.ExplainStage.BOUND),
        ("EXPLAIN PLAN FIND u", ast.ExplainStage.PLAN),
        ("EXPLAIN DATAFUSION FIND u", ast.ExplainStage.DATAFUSION),
        ("EXPLAIN ALL FIND u", ast.ExplainStage.ALL),
    ],
)
def test_explain_stages(text: str, stage: ast.ExplainStage | None) -> None:
    stmt = parse(text)
    assert isinstance(stmt, ast.Explain)
    assert stmt.stage is stage


def test_definition_management_statements() -> None:
    assert strip_spans(parse("SHOW TAGS")) == ast.Show(ast.ObjectKind.TAG, S)
    assert strip_spans(parse("SHOW SEGMENTS")) == ast.Show(ast.ObjectKind.SEGMENT, S)
    assert strip_spans(parse("SHOW CLUSTERS")) == ast.Show(ast.ObjectKind.CLUSTERS, S)
    assert strip_spans(parse("DROP TAG t")) == ast.Drop(ast.ObjectKind.TAG, ident("t"), S)
    assert strip_spans(parse("DESCRIBE SEGMENT x")) == ast.Describe(
        ast.ObjectKind.SEGMENT, ident("x"), S
    )
    membership = strip_spans(parse("EXPLAIN MEMBERSHIP lapsed_vip FOR 42"))
    assert membership == ast.ExplainMembership(ident("lapsed_vip"), i(42), S)


def test_comments_are_ignored() -> None:
    assert same_shape(parse(CORPUS["comments"]), parse("FIND users WHERE x = 1"))


def test_parallel_parsing_gives_the_same_trees() -> None:
    texts = sorted(CORPUS.values()) * 4
    expected = [parse(t) for t in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(parse, texts)) == expected
