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
from eql.syntax import ast as a
from eql.syntax.keywords import RESERVED_WORDS

__all__ = ["MAX_DECIMAL_DIGITS", "MAX_INT", "AstBuilder", "LiteralError"]

MAX_INT = 2**63 - 1
MAX_DECIMAL_DIGITS = 38

_COMPARE_OPS = {
    "EQ": a.CompareOp.EQ,
    "NE": a.CompareOp.NE,
    "LT": a.CompareOp.LT,
    "LE": a.CompareOp.LE,
    "GT": a.CompareOp.GT,
    "GE": a.CompareOp.GE,
}
_ARITH_OPS = {
    "PLUS": a.ArithOp.ADD,
    "MINUS": a.ArithOp.SUB,
    "STAR": a.ArithOp.MUL,
    "SLASH": a.ArithOp.DIV,
    "PERCENT": a.ArithOp.MOD,
}
_UNITS = {
    "HOUR": a.TimeUnit.HOUR,
    "HOURS": a.TimeUnit.HOUR,
    "DAY": a.TimeUnit.DAY,
    "DAYS": a.TimeUnit.DAY,
    "WEEK": a.TimeUnit.WEEK,
    "WEEKS": a.TimeUnit.WEEK,
    "MONTH": a.TimeUnit.MONTH,
    "MONTHS": a.TimeUnit.MONTH,
    "YEAR": a.TimeUnit.YEAR,
    "YEARS": a.TimeUnit.YEAR,
}
_KINDS = {
    "TAG": a.ObjectKind.TAG,
    "TAGS": a.ObjectKind.TAG,
    "SEGMENT": a.ObjectKind.SEGMENT,
    "SEGMENTS": a.ObjectKind.SEGMENT,
    "CLUSTERS": a.ObjectKind.CLUSTERS,
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


def ident(t: Token) -> a.Ident:
    """An identifier from a NAME token: backticks removed; bare reserved words refused."""
    text = str(t)
    if text[0] == "`":
        return a.Ident(_unquote(text, "`"), _tspan(t))
    if text.upper() in RESERVED_WORDS:
        _fail(
            "E110",
            f"`{text}` is a reserved word",
            _tspan(t),
            f"to use it as a name, write it in backticks: `{text}`",
        )
    return a.Ident(text, _tspan(t))


def _int_literal(t: Token) -> a.IntLiteral:
    digits = str(t).lstrip("0") or "0"
    if len(digits) > 19 or int(digits) > MAX_INT:
        _fail(
            "E105",
            f"integer literal `{digits[:40]}` is out of range",
            _tspan(t),
            f"integers go up to {MAX_INT}; larger exact numbers need a decimal point",
        )
    return a.IntLiteral(int(digits), _tspan(t))


def _time_text(t: Token) -> str:
    text = str(t)
    return _unquote(text[text.index("'") :], "'")


def _date_literal(t: Token) -> a.DateLiteral:
    body = _time_text(t)
    if _DATE_RE.fullmatch(body):
        try:
            return a.DateLiteral(date.fromisoformat(body), _tspan(t))
        except ValueError:
            pass
    _fail(
        "E111",
        f"invalid date literal `{str(t)[:60]}`",
        _tspan(t),
        "write a date as DATE 'YYYY-MM-DD', e.g. DATE '2026-01-31'",
    )


def _timestamp_literal(t: Token) -> a.TimestampLiteral:
    body = _time_text(t)
    if _TIMESTAMP_RE.fullmatch(body):
        try:
            value = datetime.fromisoformat(body)
        except ValueError:
            pass
        else:
            utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            return a.TimestampLiteral(utc, _tspan(t))
    _fail(
        "E111",
        f"invalid timestamp literal `{str(t)[:60]}`",
        _tspan(t),
        "write a timestamp as TIMESTAMP 'YYYY-MM-DD HH:MM:SS' (UTC), optionally with"
        " fractional seconds or an offset such as +08:00",
    )


def _param(t: Token) -> a.Param:
    return a.Param(str(t)[1:], _tspan(t))


def _timepoint(x: Any) -> a.TimePoint:
    return cast(a.TimePoint, x)


class AstBuilder:
    """Lark callbacks, one per rule/alias name in eql.lark. Stateless."""

    # --- statements ---------------------------------------------------------------------

    def start(self, c: list[Any]) -> a.Statement:
        return cast(a.Statement, c[0])

    def _clauses(self, c: list[Any]) -> dict[str, Any]:
        return {kind: value for kind, value, _ in c}

    def find(self, c: list[Any]) -> a.Find:
        cl = self._clauses(c[2:])
        return a.Find(
            entity=ident(c[1]),
            where=cl.get("where"),
            group_by=cl.get("group", ()),
            returns=cl.get("return", ()),
            order_by=cl.get("order", ()),
            limit=cl.get("limit"),
            as_of=cl.get("as_of"),
            span=Span(_start(c[0]), _end(c[-1][2] if len(c) > 2 else c[1])),
        )

    def find_events(self, c: list[Any]) -> a.FindEvents:
        cl = self._clauses(c[2:])
        return a.FindEvents(
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

    def return_item(self, c: list[Any]) -> a.ReturnItem:
        alias = ident(c[1]) if len(c) > 1 else None
        return a.ReturnItem(c[0], alias, _cover(c[0], c[-1]))

    def order_item(self, c: list[Any]) -> a.OrderItem:
        direction = a.SortDirection.ASC
        nulls = None
        for t in c[1:]:
            if t.type == "DESC":
                direction = a.SortDirection.DESC
            elif t.type == "FIRST":
                nulls = a.NullsOrder.FIRST
            elif t.type == "LAST":
                nulls = a.NullsOrder.LAST
        return a.OrderItem(c[0], direction, nulls, _cover(c[0], c[-1]))

    def explain(self, c: list[Any]) -> a.Explain:
        stage = a.ExplainStage[c[1].type] if len(c) == 3 else None
        return a.Explain(stage, c[-1], _cover(c[0], c[-1]))

    def explain_membership(self, c: list[Any]) -> a.ExplainMembership:
        t = c[2]
        key: a.MembershipKey
        if t.type == "INT":
            key = _int_literal(t)
        elif t.type == "STRING":
            key = a.StringLiteral(_unquote(str(t), "'"), _tspan(t))
        else:
            key = _param(t)
        return a.ExplainMembership(ident(c[1]), key, _cover(c[0], t))

    def define_tag(self, c: list[Any]) -> a.DefineTag:
        return a.DefineTag(ident(c[2]), ident(c[3]), c[4], _cover(c[0], c[4]))

    def define_segment(self, c: list[Any]) -> a.DefineSegment:
        return a.DefineSegment(ident(c[2]), ident(c[3]), c[4], _cover(c[0], c[4]))

    def define_clusters(self, c: list[Any]) -> a.DefineClusters:
        features = tuple(x for x in c[7:-1])
        return a.DefineClusters(
            name=ident(c[2]),
            entity=ident(c[3]),
            k=_int_literal(c[4]),
            seed=_int_literal(c[5]),
            features=features,
            span=_cover(c[0], c[-1]),
        )

    def feature(self, c: list[Any]) -> a.Feature:
        return a.Feature(ident(c[0]), c[2], _cover(c[0], c[2]))

    def refresh(self, c: list[Any]) -> a.Refresh:
        return a.Refresh(_KINDS[c[1].type], ident(c[2]), _cover(c[0], c[2]))

    def drop(self, c: list[Any]) -> a.Drop:
        return a.Drop(_KINDS[c[1].type], ident(c[2]), _cover(c[0], c[2]))

    def describe(self, c: list[Any]) -> a.Describe:
        return a.Describe(_KINDS[c[1].type], ident(c[2]), _cover(c[0], c[2]))

    def show(self, c: list[Any]) -> a.Show:
        return a.Show(_KINDS[c[1].type], _cover(c[0], c[1]))

    # --- boolean structure ----------------------------------------------------------------

    def or_op(self, c: list[Any]) -> a.Logical:
        return a.Logical(a.LogicalOp.OR, tuple(c), _cover(c[0], c[-1]))

    def and_op(self, c: list[Any]) -> a.Logical:
        return a.Logical(a.LogicalOp.AND, tuple(c), _cover(c[0], c[-1]))

    def not_op(self, c: list[Any]) -> a.Not:
        return a.Not(c[1], _cover(c[0], c[1]))

    def compare(self, c: list[Any]) -> a.Compare:
        return a.Compare(_COMPARE_OPS[c[1].type], c[0], c[2], _cover(c[0], c[2]))

    def is_null(self, c: list[Any]) -> a.IsNull:
        return a.IsNull(c[0], len(c) == 3, _cover(c[0], c[-1]))

    def in_list(self, c: list[Any]) -> a.InList:
        negated = c[1].type == "NOT"
        items = tuple(c[4 if negated else 3 : -1])
        return a.InList(c[0], items, negated, _cover(c[0], c[-1]))

    def in_param(self, c: list[Any]) -> a.InParam:
        return a.InParam(c[0], _param(c[-1]), len(c) == 4, _cover(c[0], c[-1]))

    def between(self, c: list[Any]) -> a.Between:
        if len(c) == 4:
            return a.Between(c[0], c[2], c[3], True, _cover(c[0], c[3]))
        return a.Between(c[0], c[1], c[2], False, _cover(c[0], c[2]))

    def like(self, c: list[Any]) -> a.Like:
        return a.Like(c[0], c[-1], len(c) == 3, _cover(c[0], c[-1]))

    def in_segment(self, c: list[Any]) -> a.InSegment:
        return a.InSegment(ident(c[2]), _cover(c[0], c[2]))

    def did(self, c: list[Any]) -> a.Did:
        filter_: a.Expr | None = None
        window: a.Window | None = None
        for x in c[2:]:
            if isinstance(x, (a.LastWindow, a.RangeWindow)):
                window = x
            else:
                filter_ = x
        return a.Did(c[1], filter_, window, _cover(c[0], c[-1]))

    # --- arithmetic and atoms -------------------------------------------------------------

    def arith(self, c: list[Any]) -> a.Arith:
        return a.Arith(_ARITH_OPS[c[1].type], c[0], c[2], _cover(c[0], c[2]))

    def neg(self, c: list[Any]) -> a.Negate:
        return a.Negate(c[1], _cover(c[0], c[1]))

    def int_lit(self, c: list[Any]) -> a.IntLiteral:
        return _int_literal(c[0])

    def decimal_lit(self, c: list[Any]) -> a.DecimalLiteral:
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
        return a.DecimalLiteral(value, _tspan(t))

    def string_lit(self, c: list[Any]) -> a.StringLiteral:
        t = c[0]
        return a.StringLiteral(_unquote(str(t), "'"), _tspan(t))

    def bool_lit(self, c: list[Any]) -> a.BoolLiteral:
        t = c[0]
        return a.BoolLiteral(t.type == "TRUE", _tspan(t))

    def null_lit(self, c: list[Any]) -> a.NullLiteral:
        return a.NullLiteral(_tspan(c[0]))

    def date_lit(self, c: list[Any]) -> a.DateLiteral:
        return _date_literal(c[0])

    def timestamp_lit(self, c: list[Any]) -> a.TimestampLiteral:
        return _timestamp_literal(c[0])

    def param(self, c: list[Any]) -> a.Param:
        return _param(c[0])

    def path(self, c: list[Any]) -> a.Path:
        return a.Path(tuple(ident(t) for t in c), _cover(c[0], c[-1]))

    def paren(self, c: list[Any]) -> a.Expr:
        """`( expr )`: no node of its own; the expression's span grows to cover the parens."""
        return cast(a.Expr, dataclasses.replace(c[1], span=_cover(c[0], c[2])))

    def as_of_value(self, c: list[Any]) -> a.AsOfValue:
        return a.AsOfValue(c[1], _timepoint(c[3]), _cover(c[0], c[4]))

    def call(self, c: list[Any]) -> a.Call:
        name = ident(c[0])
        span = _cover(c[0], c[-1])
        if len(c) == 3:
            return a.Call(name, (), False, False, None, None, span)
        star, distinct, args, filter_, window = c[2]
        return a.Call(name, args, star, distinct, filter_, window, span)

    def call_args(
        self, c: list[Any]
    ) -> tuple[bool, bool, tuple[a.Expr, ...], a.Expr | None, a.Window | None]:
        filter_: a.Expr | None = None
        window: a.Window | None = None
        if c and isinstance(c[-1], tuple):
            filter_, window = c[-1]
            c = c[:-1]
        if c and isinstance(c[0], Token):
            if c[0].type == "STAR":
                return (True, False, (), filter_, window)
            return (False, True, tuple(c[1:]), filter_, window)
        return (False, False, tuple(c), filter_, window)

    def mods_where(self, c: list[Any]) -> tuple[a.Expr | None, a.Window | None]:
        return (c[0], None)

    def mods_where_during(self, c: list[Any]) -> tuple[a.Expr | None, a.Window | None]:
        return (c[0], c[1])

    def mods_during(self, c: list[Any]) -> tuple[a.Expr | None, a.Window | None]:
        return (None, c[0])

    def mods_during_where(self, c: list[Any]) -> tuple[a.Expr | None, a.Window | None]:
        return (c[1], c[0])

    def case(self, c: list[Any]) -> a.Case:
        return self._case(None, c[1:-1], _cover(c[0], c[-1]))

    def case_operand(self, c: list[Any]) -> a.Case:
        return self._case(c[1], c[2:-1], _cover(c[0], c[-1]))

    def _case(self, operand: a.Expr | None, rest: list[Any], span: Span) -> a.Case:
        else_ = None
        if not isinstance(rest[-1], a.WhenClause):
            else_ = rest[-1]
            rest = rest[:-1]
        return a.Case(operand, tuple(rest), else_, span)

    def when_clause(self, c: list[Any]) -> a.WhenClause:
        return a.WhenClause(c[1], c[2], _cover(c[0], c[2]))

    # --- windows --------------------------------------------------------------------------

    def last_window(self, c: list[Any]) -> a.LastWindow:
        t = c[1]
        count = _param(t) if t.type == "PARAM" else _int_literal(t)
        return a.LastWindow(count, _UNITS[c[2].type], _cover(c[0], c[2]))

    def range_window(self, c: list[Any]) -> a.RangeWindow:
        return a.RangeWindow(_timepoint(c[0]), _timepoint(c[1]), _cover(c[0], c[1]))
