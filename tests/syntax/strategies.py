"""Hypothesis strategies for random ASTs of every node kind (spans all `NO_SPAN`).

They produce exactly the trees the parser can produce (see the invariants in eql.syntax.ast):
non-negative numbers, flat AND/OR with two or more operands, UTC timestamps, `*` only alone.
"""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

from hypothesis import strategies as st

from eql.syntax import NO_SPAN, ast
from eql.syntax.build_ast import MAX_INT

S = NO_SPAN
_FIRST = "abcdefghijklmnopqrstuvwxyzABCXYZ_"
SIMPLE = st.builds(
    lambda a, b: a + b,
    st.sampled_from(_FIRST),
    st.text(alphabet=_FIRST + "0123456789", max_size=7),
)
# any non-empty text is a valid name in backticks; bias towards the tricky ones
TRICKY = st.sampled_from(
    ["where", "IN", "not", "events", "of", "funnel", "then", "a b", "x`y", "`", "é", "名字", "1x"]
)
NAMES = st.one_of(SIMPLE, SIMPLE, TRICKY, st.text(min_size=1, max_size=6))
TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["'", "''", "'; DROP TABLE x; --", "/* x */", "-- x", "\x00", "\\", "`"]),
)


def idents() -> st.SearchStrategy[ast.Ident]:
    return st.builds(ast.Ident, NAMES, st.just(S))


def params() -> st.SearchStrategy[ast.Param]:
    return st.builds(ast.Param, SIMPLE, st.just(S))


def paths() -> st.SearchStrategy[ast.Path]:
    return st.builds(ast.Path, st.lists(idents(), min_size=1, max_size=3).map(tuple), st.just(S))


def ints() -> st.SearchStrategy[ast.IntLiteral]:
    return st.builds(ast.IntLiteral, st.integers(0, MAX_INT), st.just(S))


DECIMALS = st.decimals(
    min_value=0, max_value=10**12, allow_nan=False, allow_infinity=False, places=6
).map(lambda d: abs(d) + Decimal(0))


def strings() -> st.SearchStrategy[ast.StringLiteral]:
    return st.builds(ast.StringLiteral, TEXT, st.just(S))


def dates() -> st.SearchStrategy[ast.DateLiteral]:
    return st.builds(ast.DateLiteral, st.dates(), st.just(S))


def timestamps() -> st.SearchStrategy[ast.TimestampLiteral]:
    return st.builds(ast.TimestampLiteral, st.datetimes(timezones=st.just(UTC)), st.just(S))


def literals() -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        ints(),
        st.builds(ast.DecimalLiteral, DECIMALS, st.just(S)),
        strings(),
        st.builds(ast.BoolLiteral, st.booleans(), st.just(S)),
        st.just(ast.NullLiteral(S)),
        dates(),
        timestamps(),
    )


def timepoints() -> st.SearchStrategy[ast.TimePoint]:
    return st.one_of(strings(), dates(), timestamps(), params())


def windows() -> st.SearchStrategy[ast.Window]:
    return st.one_of(
        st.builds(
            ast.LastWindow,
            st.one_of(st.builds(ast.IntLiteral, st.integers(0, 1000), st.just(S)), params()),
            st.sampled_from(ast.TimeUnit),
            st.just(S),
        ),
        st.builds(ast.RangeWindow, timepoints(), timepoints(), st.just(S)),
    )


def _leaves() -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        literals(),
        params(),
        paths(),
        paths(),
        st.builds(ast.InSegment, idents(), st.just(S)),
        st.builds(ast.AsOfValue, paths(), timepoints(), st.just(S)),
        st.builds(ast.Did, paths(), st.none(), st.one_of(st.none(), windows()), st.just(S)),
    )


def _composites(sub: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    opt = st.one_of(st.none(), sub)
    opt_window = st.one_of(st.none(), windows())
    some = st.lists(sub, min_size=1, max_size=3).map(tuple)
    calls = st.one_of(
        st.builds(ast.Call, idents(), st.just(()), st.just(False), st.just(False), st.none(),
                  st.none(), st.just(S)),
        st.builds(ast.Call, idents(), st.just(()), st.just(True), st.just(False), opt,
                  opt_window, st.just(S)),
        st.builds(ast.Call, idents(), some, st.just(False), st.booleans(), opt, opt_window,
                  st.just(S)),
    )  # fmt: skip
    return st.one_of(
        calls,
        st.builds(
            ast.Case,
            opt,
            st.lists(st.builds(ast.WhenClause, sub, sub, st.just(S)), min_size=1, max_size=3).map(
                tuple
            ),
            opt,
            st.just(S),
        ),
        st.builds(ast.Negate, sub, st.just(S)),
        st.builds(ast.Arith, st.sampled_from(ast.ArithOp), sub, sub, st.just(S)),
        st.builds(ast.Compare, st.sampled_from(ast.CompareOp), sub, sub, st.just(S)),
        st.builds(ast.IsNull, sub, st.booleans(), st.just(S)),
        st.builds(ast.InList, sub, some, st.booleans(), st.just(S)),
        st.builds(ast.InParam, sub, params(), st.booleans(), st.just(S)),
        st.builds(ast.Between, sub, sub, sub, st.booleans(), st.just(S)),
        st.builds(ast.Like, sub, sub, st.booleans(), st.just(S)),
        st.builds(ast.Did, paths(), opt, opt_window, st.just(S)),
        st.builds(ast.Not, sub, st.just(S)),
        st.builds(
            ast.Logical,
            st.sampled_from(ast.LogicalOp),
            st.lists(sub, min_size=2, max_size=4).map(tuple),
            st.just(S),
        ),
    )


def exprs(max_leaves: int = 12) -> st.SearchStrategy[ast.Expr]:
    return st.recursive(_leaves(), _composites, max_leaves=max_leaves)


def _clauses(e: st.SearchStrategy[ast.Expr]) -> dict[str, st.SearchStrategy[object]]:
    few = st.lists(e, max_size=2).map(tuple)
    return {
        "where": st.one_of(st.none(), e),
        "group_by": few,
        "returns": st.lists(
            st.builds(ast.ReturnItem, e, st.one_of(st.none(), idents()), st.just(S)), max_size=2
        ).map(tuple),
        "order_by": st.lists(
            st.builds(
                ast.OrderItem,
                e,
                st.sampled_from(ast.SortDirection),
                st.one_of(st.none(), st.sampled_from(ast.NullsOrder)),
                st.just(S),
            ),
            max_size=2,
        ).map(tuple),
        "limit": st.one_of(st.none(), ints(), params()),
        "as_of": st.one_of(st.none(), timepoints()),
    }


def queries(e: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Find | ast.FindEvents]:
    return st.one_of(
        st.builds(ast.Find, entity=idents(), span=st.just(S), **_clauses(e)),
        st.builds(
            ast.FindEvents,
            stream=idents(),
            during=st.one_of(st.none(), windows()),
            span=st.just(S),
            **_clauses(e),
        ),
    )


def definitions(
    e: st.SearchStrategy[ast.Expr],
) -> st.SearchStrategy[ast.DefineTag | ast.DefineSegment | ast.DefineClusters]:
    features = st.lists(st.builds(ast.Feature, idents(), e, st.just(S)), min_size=1, max_size=3)
    return st.one_of(
        st.builds(ast.DefineTag, idents(), idents(), e, st.just(S)),
        st.builds(ast.DefineSegment, idents(), idents(), e, st.just(S)),
        st.builds(
            ast.DefineClusters, idents(), idents(), ints(), ints(), features.map(tuple), st.just(S)
        ),
    )


def statements(max_leaves: int = 8) -> st.SearchStrategy[ast.Statement]:
    e = exprs(max_leaves)
    kinds = st.sampled_from(ast.ObjectKind)
    return st.one_of(
        queries(e),
        queries(e),
        definitions(e),
        st.builds(
            ast.Explain,
            st.one_of(st.none(), st.sampled_from(ast.ExplainStage)),
            st.one_of(queries(e), definitions(e)),
            st.just(S),
        ),
        st.builds(
            ast.ExplainMembership, idents(), st.one_of(ints(), strings(), params()), st.just(S)
        ),
        st.builds(ast.Refresh, kinds, idents(), st.just(S)),
        st.builds(ast.Drop, kinds, idents(), st.just(S)),
        st.builds(ast.Describe, kinds, idents(), st.just(S)),
        st.builds(ast.Show, kinds, st.just(S)),
    )
