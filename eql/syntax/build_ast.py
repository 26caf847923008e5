"""Parse tree to AST: the callbacks Lark calls on each reduction (an inline LALR transformer).

`AstBuilder` has one method per rule or alias of eql/grammar/eql.lark; Lark passes the children
(tokens and already built nodes) and the method returns an AST node, so no parse tree is ever
built. The builder is stateless (the parser shares one instance across threads); a bad literal
raises `LiteralError` carrying its diagnostic, which `parser.parse` turns into an `EqlError`.

May import lark, eql.diagnostics and eql.syntax.ast / eql.syntax.keywords.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn, cast

from lark import Token

from eql.diagnostics import Diagnostic, InternalError, Span
from eql.syntax import ast
from eql.syntax.keywords import RESERVED_WORDS

__all__ = ["MAX_DECIMAL_DIGITS", "MAX_INT", "AstBuilder", "LiteralError"]

MAX_INT = 2**63 - 1
MAX_DECIMAL_DIGITS = 38

_COMPARE_OPS = {
    "EQ": ast.CompareOp.EQ,
    "NE": ast.CompareOp.NE,
    "LT": ast.CompareOp.LT,
    "LE": ast.CompareOp.LE,
    "GT": ast.CompareOp.GT,
    "GE": ast.CompareOp.GE,
}
_ARITH_OPS = {
    "PLUS": ast.ArithOp.ADD,
    "MINUS": ast.ArithOp.SUB,
    "STAR": ast.ArithOp.MUL,
    "SLASH": ast.ArithOp.DIV,
    "PERCENT": ast.ArithOp.MOD,
}
_UNITS = {
    "HOUR": ast.TimeUnit.HOUR,
    "HOURS": ast.TimeUnit.HOUR,
    "DAY": ast.TimeUnit.DAY,
    "DAYS": ast.TimeUnit.DAY,
    "WEEK": ast.TimeUnit.WEEK,
    "WEEKS": ast.TimeUnit.WEEK,
    "MONTH": ast.TimeUnit.MONTH,
    "MONTHS": ast.TimeUnit.MONTH,
    "YEAR": ast.TimeUnit.YEAR,
    "YEARS": ast.TimeUnit.YEAR,
}
_KINDS = {
    "TAG": ast.ObjectKind.TAG,
    "TAGS": ast.ObjectKind.TAG,
    "SEGMENT": ast.ObjectKind.SEGMENT,
    "SEGMENTS": ast.ObjectKind.SEGMENT,
    "CLUSTERS": ast.ObjectKind.CLUSTERS,
}
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[ T][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)


class LiteralError(Exception):
    """A literal or name that lexes and parses but is not valid; carries one diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def _fail(code: str, message: str, span: Span, *helps: str) -> NoReturn:
    raise LiteralError(Diagnostic(code, message, span, helps=helps))


def _tspan(t: Token) -> Span:
    return Span(cast(int, t.start_pos), cast(int, t.end_pos))


def _start(x: Any) -> int:
    if isinstance(x, Token):
        return cast(int, x.start_pos)
    return cast(int, x.span.start)


def _end(x: Any) -> int:
    if isinstance(x, Token):
        return cast(int, x.end_pos)
    return cast(int, x.span.end)


def _cover(first: Any, last: Any) -> Span:
    return Span(_start(first), _end(last))


def _unquote(body: str, quote: str) -> str:
    """The text between the outer quotes, with doubled quotes undoubled."""
    return body[1:-1].replace(quote + quote, quote)


def ident(t: Token) -> ast.Ident:
    """An identifier from a NAME token: backticks removed; bare reserved words refused."""
    text = str(t)
    if text[0] == "`":
        return ast.Ident(_unquote(text, "`"), _tspan(t))
    if text.upper() in RESERVED_WORDS:
        _fail(
            "E110",
            f"`{text}` is a reserved word",
            _tspan(t),
            f"to use it as a name, write it in backticks: `{text}`",
        )
    return ast.Ident(text, _tspan(t))


def _int_literal(t: Token) -> ast.IntLiteral:
    digits = str(t).lstrip("0") or "0"
    if len(digits) > 19 or int(digits) > MAX_INT:
        _fail(
            "E105",
            f"integer literal `{digits[:40]}` is out of range",
            _tspan(t),
            f"integers go up to {MAX_INT}; larger exact numbers need a decimal point",
        )
    return ast.IntLiteral(int(digits), _tspan(t))


def _time_text(t: Token) -> str:
    text = str(t)
    return _unquote(text[text.index("'") :], "'")


def _date_literal(t: Token) -> ast.DateLiteral:
    body = _time_text(t)
    if _DATE_RE.fullmatch(body):
        try:
            return ast.DateLiteral(date.fromisoformat(body), _tspan(t))
        except ValueError:
            pass
    _fail(
        "E111",
        f"invalid date literal `{str(t)[:60]}`",
        _tspan(t),
        "write a date as DATE 'YYYY-MM-DD', e.g. DATE '2026-01-31'",
    )


def _timestamp_literal(t: Token) -> ast.TimestampLiteral:
    body = _time_text(t)
    if _TIMESTAMP_RE.fullmatch(body):
        try:
            value = datetime.fromisoformat(body)
        except ValueError:
            pass
        else:
            utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            return ast.TimestampLiteral(utc, _tspan(t))
    _fail(
        "E111",
        f"invalid timestamp literal `{str(t)[:60]}`",
        _tspan(t),
        "write a timestamp as TIMESTAMP 'YYYY-MM-DD HH:MM:SS' (UTC), optionally with"
        " fractional seconds or an offset such as +08:00",
    )


def _param(t: Token) -> ast.Param:
    return ast.Param(str(t)[1:], _tspan(t))


def _timepoint(x: Any) -> ast.TimePoint:
    return cast(ast.TimePoint, x)


class AstBuilder:
    """Lark callbacks, one per rule/alias name in eql.lark. Stateless."""

    # --- statements ---------------------------------------------------------------------

    def start(self, c: list[Any]) -> ast.Statement:
        return cast(ast.Statement, c[0])

    def _clauses(self, c: list[Any]) -> dict[str, Any]:
        return {kind: value for kind, value, _ in c}

    def find(self, c: list[Any]) -> ast.Find:
        cl = self._clauses(c[2:])
        return ast.Find(
            entity=ident(c[1]),
            where=cl.get("where"),
            group_by=cl.get("group", ()),
            returns=cl.get("return", ()),
            order_by=cl.get("order", ()),
            limit=cl.get("limit"),
            as_of=cl.get("as_of"),
            span=Span(_start(c[0]), _end(c[-1][2] if len(c) > 2 else c[1])),
        )

    def find_events(self, c: list[Any]) -> ast.FindEvents:
        cl = self._clauses(c[2:])
        return ast.FindEvents(
            stream=ident(c[1]),
            during=cl.get("during"),
            where=cl.get("where"),
            group_by=cl.get("group", ()),
            returns=cl.get("return", ()),
            order_by=cl.get("order", ()),
            limit=cl.get("limit"),
            as_of=cl.get("as_of"),
            span=Span(_start(c[0]), _end(c[-1][2] if len(c) > 2 else c[1])),
        )

    # Clauses are (kind, value, last) triples; `last` gives the clause's end position.
    def where_clause(self, c: list[Any]) -> tuple[str, Any, Any]:
        return ("where", c[0], c[0])

    def during_clause(self, c: list[Any]) -> tuple[str, Any, Any]:
        return ("during", c[0], c[0])

    def group_clause(self, c: list[Any]) -> tuple[str, Any, Any]:
        return ("group", tuple(c), c[-1])

    def return_clause(self, c: list[Any]) -> tuple[str, Any, Any]:
        return ("return", tuple(c), c[-1])

    def order_clause(self, c: list[Any]) -> tuple[str, Any, Any]:
        return ("order", tuple(c), c[-1])

    def limit_clause(self, c: list[Any]) -> tuple[str, Any, Any]:
        t = c[0]
        value = _param(t) if t.type == "PARAM" else _int_literal(t)
        return ("limit", value, value)

    def as_of_clause(self, c: list[Any]) -> tuple[str, Any, Any]:
        return ("as_of", c[1], c[1])

    def return_item(self, c: list[Any]) -> ast.ReturnItem:
        alias = ident(c[1]) if len(c) > 1 else None
        return ast.ReturnItem(c[0], alias, _cover(c[0], c[-1]))

    def order_item(self, c: list[Any]) -> ast.OrderItem:
        direction = ast.SortDirection.ASC
        nulls = None
        for t in c[1:]:
            if t.type == "DESC":
                direction = ast.SortDirection.DESC
            elif t.type == "FIRST":
                nulls = ast.NullsOrder.FIRST
            elif t.type == "LAST":
                nulls = ast.NullsOrder.LAST
        return ast.OrderItem(c[0], direction, nulls, _cover(c[0], c[-1]))

    def explain(self, c: list[Any]) -> ast.Explain:
        stage = ast.ExplainStage[c[1].type] if len(c) == 3 else None
        return ast.Explain(stage, c[-1], _cover(c[0], c[-1]))

    def explain_membership(self, c: list[Any]) -> ast.ExplainMembership:
        t = c[2]
        key: ast.MembershipKey
        if t.type == "INT":
            key = _int_literal(t)
        elif t.type == "STRING":
            key = ast.StringLiteral(_unquote(str(t), "'"), _tspan(t))
        else:
            key = _param(t)
        return ast.ExplainMembership(ident(c[1]), key, _cover(c[0], t))

    def define_tag(self, c: list[Any]) -> ast.DefineTag:
        return ast.DefineTag(ident(c[2]), ident(c[3]), c[4], _cover(c[0], c[4]))

    def define_segment(self, c: list[Any]) -> ast.DefineSegment:
        return ast.DefineSegment(ident(c[2]), ident(c[3]), c[4], _cover(c[0], c[4]))

    def define_clusters(self, c: list[Any]) -> ast.DefineClusters:
        features = tuple(x for x in c[7:-1])
        return ast.DefineClusters(
            name=ident(c[2]),
            entity=ident(c[3]),
            k=_int_literal(c[4]),
            seed=_int_literal(c[5]),
            features=features,
            span=_cover(c[0], c[-1]),
        )

    def feature(self, c: list[Any]) -> ast.Feature:
        return ast.Feature(ident(c[0]), c[2], _cover(c[0], c[2]))

    def refresh(self, c: list[Any]) -> ast.Refresh:
        return ast.Refresh(_KINDS[c[1].type], ident(c[2]), _cover(c[0], c[2]))

    def drop(self, c: list[Any]) -> ast.Drop:
        return ast.Drop(_KINDS[c[1].type], ident(c[2]), _cover(c[0], c[2]))

    def describe(self, c: list[Any]) -> ast.Describe:
        return ast.Describe(_KINDS[c[1].type], ident(c[2]), _cover(c[0], c[2]))

    def show(self, c: list[Any]) -> ast.Show:
        return ast.Show(_KINDS[c[1].type], _cover(c[0], c[1]))

    # --- boolean structure ----------------------------------------------------------------

    def or_op(self, c: list[Any]) -> ast.Logical:
        return ast.Logical(ast.LogicalOp.OR, tuple(c), _cover(c[0], c[-1]))

    def and_op(self, c: list[Any]) -> ast.Logical:
        return ast.Logical(ast.LogicalOp.AND, tuple(c), _cover(c[0], c[-1]))

    def not_op(self, c: list[Any]) -> ast.Not:
        return ast.Not(c[1], _cover(c[0], c[1]))

    def compare(self, c: list[Any]) -> ast.Compare:
        return ast.Compare(_COMPARE_OPS[c[1].type], c[0], c[2], _cover(c[0], c[2]))

    def is_null(self, c: list[Any]) -> ast.IsNull:
        return ast.IsNull(c[0], len(c) == 3, _cover(c[0], c[-1]))

    def in_list(self, c: list[Any]) -> ast.InList:
        negated = c[1].type == "NOT"
        items = tuple(c[4 if negated else 3 : -1])
        return ast.InList(c[0], items, negated, _cover(c[0], c[-1]))

    def in_param(self, c: list[Any]) -> ast.InParam:
        return ast.InParam(c[0], _param(c[-1]), len(c) == 4, _cover(c[0], c[-1]))

    def between(self, c: list[Any]) -> ast.Between:
        if len(c) == 4:
            return ast.Between(c[0], c[2], c[3], True, _cover(c[0], c[3]))
        return ast.Between(c[0], c[1], c[2], False, _cover(c[0], c[2]))

    def like(self, c: list[Any]) -> ast.Like:
        return ast.Like(c[0], c[-1], len(c) == 3, _cover(c[0], c[-1]))

    def in_segment(self, c: list[Any]) -> ast.InSegment:
        return ast.InSegment(ident(c[2]), _cover(c[0], c[2]))

    def did(self, c: list[Any]) -> ast.Did:
        filter_: ast.Expr | None = None
        window: ast.Window | None = None
        for x in c[2:]:
            if isinstance(x, (ast.LastWindow, ast.RangeWindow)):
                window = x
            else:
                filter_ = x
        return ast.Did(c[1], filter_, window, _cover(c[0], c[-1]))

    # --- arithmetic and atoms -------------------------------------------------------------

    def arith(self, c: list[Any]) -> ast.Arith:
        return ast.Arith(_ARITH_OPS[c[1].type], c[0], c[2], _cover(c[0], c[2]))

    def neg(self, c: list[Any]) -> ast.Negate:
        return ast.Negate(c[1], _cover(c[0], c[1]))

    def int_lit(self, c: list[Any]) -> ast.IntLiteral:
        return _int_literal(c[0])

    def decimal_lit(self, c: list[Any]) -> ast.DecimalLiteral:
        t = c[0]
        text = str(t)
        digits = len(text) - 1 - (len(text) - len(text.lstrip("0")))
        if digits > MAX_DECIMAL_DIGITS:
            _fail(
                "E105",
                f"decimal literal `{text[:40]}` has more than {MAX_DECIMAL_DIGITS} digits",
                _tspan(t),
            )
        try:
            value = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the lexer only passes digits.digits
            raise InternalError(f"decimal token {text!r}") from None
        return ast.DecimalLiteral(value, _tspan(t))

    def string_lit(self, c: list[Any]) -> ast.StringLiteral:
        t = c[0]
        return ast.StringLiteral(_unquote(str(t), "'"), _tspan(t))

    def bool_lit(self, c: list[Any]) -> ast.BoolLiteral:
        t = c[0]
        return ast.BoolLiteral(t.type == "TRUE", _tspan(t))

    def null_lit(self, c: list[Any]) -> ast.NullLiteral:
        return ast.NullLiteral(_tspan(c[0]))

    def date_lit(self, c: list[Any]) -> ast.DateLiteral:
        return _date_literal(c[0])

    def timestamp_lit(self, c: list[Any]) -> ast.TimestampLiteral:
        return _timestamp_literal(c[0])

    def param(self, c: list[Any]) -> ast.Param:
        return _param(c[0])

    def path(self, c: list[Any]) -> ast.Path:
        return ast.Path(tuple(ident(t) for t in c), _cover(c[0], c[-1]))

    def paren(self, c: list[Any]) -> ast.Expr:
        """`( expr )`: no node of its own; the expression's span grows to cover the parens."""
        return cast(ast.Expr, dataclasses.replace(c[1], span=_cover(c[0], c[2])))

    def as_of_value(self, c: list[Any]) -> ast.AsOfValue:
        return ast.AsOfValue(c[1], _timepoint(c[3]), _cover(c[0], c[4]))

    def call(self, c: list[Any]) -> ast.Call:
        name = ident(c[0])
        span = _cover(c[0], c[-1])
        if len(c) == 3:
            return ast.Call(name, (), False, False, None, None, span)
        star, distinct, args, filter_, window = c[2]
        return ast.Call(name, args, star, distinct, filter_, window, span)

    def call_args(
        self, c: list[Any]
    ) -> tuple[bool, bool, tuple[ast.Expr, ...], ast.Expr | None, ast.Window | None]:
        filter_: ast.Expr | None = None
        window: ast.Window | None = None
        if c and isinstance(c[-1], tuple):
            filter_, window = c[-1]
            c = c[:-1]
        if c and isinstance(c[0], Token):
            if c[0].type == "STAR":
                return (True, False, (), filter_, window)
            return (False, True, tuple(c[1:]), filter_, window)
        return (False, False, tuple(c), filter_, window)

    def mods_where(self, c: list[Any]) -> tuple[ast.Expr | None, ast.Window | None]:
        return (c[0], None)

    def mods_where_during(self, c: list[Any]) -> tuple[ast.Expr | None, ast.Window | None]:
        return (c[0], c[1])

    def mods_during(self, c: list[Any]) -> tuple[ast.Expr | None, ast.Window | None]:
        return (None, c[0])

    def mods_during_where(self, c: list[Any]) -> tuple[ast.Expr | None, ast.Window | None]:
        return (c[1], c[0])

    def case(self, c: list[Any]) -> ast.Case:
        return self._case(None, c[1:-1], _cover(c[0], c[-1]))

    def case_operand(self, c: list[Any]) -> ast.Case:
        return self._case(c[1], c[2:-1], _cover(c[0], c[-1]))

    def _case(self, operand: ast.Expr | None, rest: list[Any], span: Span) -> ast.Case:
        else_ = None
        if not isinstance(rest[-1], ast.WhenClause):
            else_ = rest[-1]
            rest = rest[:-1]
        return ast.Case(operand, tuple(rest), else_, span)

    def when_clause(self, c: list[Any]) -> ast.WhenClause:
        return ast.WhenClause(c[1], c[2], _cover(c[0], c[2]))

    # --- windows --------------------------------------------------------------------------

    def last_window(self, c: list[Any]) -> ast.LastWindow:
        t = c[1]
        count = _param(t) if t.type == "PARAM" else _int_literal(t)
        return ast.LastWindow(count, _UNITS[c[2].type], _cover(c[0], c[2]))

    def range_window(self, c: list[Any]) -> ast.RangeWindow:
        return ast.RangeWindow(_timepoint(c[0]), _timepoint(c[1]), _cover(c[0], c[1]))
