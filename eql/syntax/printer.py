"""The printer: canonical EQL text from the AST (a formatter, and half of the round-trip tests).

`format_statement(parse(t))` parses back to the same AST (ignoring spans) for every AST the
parser can produce. Keywords are upper case, clauses are one per line in canonical order,
parentheses appear only where precedence (or one of the grammar's rules, see eql.lark) needs them,
strings are re-quoted with `''`, and names that are not simple or could be read as a keyword are
written in backticks.

May import only the standard library, eql.diagnostics and eql.syntax (not lark).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import assert_never

from eql.syntax import ast
from eql.syntax.keywords import HARD_KEYWORDS, RESERVED_WORDS

__all__ = ["format_expr", "format_ident", "format_statement", "format_window"]

_SIMPLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `OF` too: `RETURN x AS of` would be read as the query's `AS OF`.
_QUOTE_WORDS = HARD_KEYWORDS | RESERVED_WORDS | {"OF"}

# Precedence levels, loosest first; an operand below the level its position needs gets parens.
_OR, _AND, _NOT, _PRED, _SUM, _PRODUCT, _UNARY, _ATOM = range(1, 9)


def format_ident(name: str) -> str:
    if _SIMPLE_NAME.fullmatch(name) and name.upper() not in _QUOTE_WORDS:
        return name
    return "`" + name.replace("`", "``") + "`"


def _string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _timestamp(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return f"TIMESTAMP '{text}'"


def _level(e: ast.Expr) -> int:
    match e:
        case ast.Logical(op=op):
            return _OR if op is ast.LogicalOp.OR else _AND
        case ast.Not():
            return _NOT
        case (
            ast.Compare() | ast.IsNull() | ast.InList() | ast.InParam() | ast.Between() | ast.Like()
        ):
            return _PRED
        case ast.InSegment() | ast.Did():
            return _PRED
        case ast.Arith(op=op):
            return _SUM if op in (ast.ArithOp.ADD, ast.ArithOp.SUB) else _PRODUCT
        case ast.Negate():
            return _UNARY
        case _:
            return _ATOM


def _sub(e: ast.Expr, need: int) -> str:
    text = format_expr(e)
    return f"({text})" if _level(e) < need else text


def _ends_with_open_did(e: ast.Expr) -> bool:
    """Would the printed `e` end with a DID that has no window of its own?

    Such an expression cannot stand right before a call's WHERE/DURING: the grammar gives that
    DURING to the DID (see the `c_*` rules of eql.lark), so the printer adds parentheses.
    """
    while True:
        match e:
            case ast.Logical(op=op, operands=ops):
                nxt, need = ops[-1], (_AND if op is ast.LogicalOp.OR else _NOT)
            case ast.Not(operand=operand):
                nxt, need = operand, _NOT
            case ast.Did(window=window):
                return window is None
            case _:
                return False
        if _level(nxt) < need:
            return False
        e = nxt


def _closed(e: ast.Expr) -> str:
    text = format_expr(e)
    return f"({text})" if _ends_with_open_did(e) else text


def _call(e: ast.Call) -> str:
    has_mods = e.filter is not None or e.window is not None
    parts: list[str] = []
    if e.star:
        parts.append("*")
    elif e.args:
        args = [format_expr(x) for x in e.args[:-1]]
        args.append(_closed(e.args[-1]) if has_mods else format_expr(e.args[-1]))
        parts.append(("DISTINCT " if e.distinct else "") + ", ".join(args))
    if e.filter is not None:
        cond = _closed(e.filter) if e.window is not None else format_expr(e.filter)
        parts.append(f"WHERE {cond}")
    if e.window is not None:
        parts.append(f"DURING {format_window(e.window)}")
    return f"{format_ident(e.name.name)}({' '.join(parts)})"


def _did(e: ast.Did) -> str:
    text = "DID " + _path(e.path)
    if e.filter is not None:
        cond = format_expr(e.filter)
        if _level(e.filter) < _PRED or isinstance(e.filter, ast.Did):
            cond = f"({cond})"
        text += f" WHERE {cond}"
    if e.window is not None:
        text += f" DURING {format_window(e.window)}"
    return text


def _path(p: ast.Path) -> str:
    return ".".join(format_ident(part.name) for part in p.parts)


def _case(e: ast.Case) -> str:
    parts = ["CASE"]
    if e.operand is not None:
        parts.append(format_expr(e.operand))
    for w in e.whens:
        parts.append(f"WHEN {format_expr(w.condition)} THEN {format_expr(w.result)}")
    if e.else_ is not None:
        parts.append(f"ELSE {format_expr(e.else_)}")
    parts.append("END")
    return " ".join(parts)


def _not(negated: bool) -> str:
    return "NOT " if negated else ""


def format_timepoint(t: ast.TimePoint) -> str:
    return format_expr(t)


def format_window(w: ast.Window) -> str:
    match w:
        case ast.LastWindow(count=count, unit=unit):
            n = format_expr(count)
            plural = "" if isinstance(count, ast.IntLiteral) and count.value == 1 else "S"
            return f"LAST {n} {unit.value}{plural}"
        case ast.RangeWindow(start=start, end=end):
            return f"{format_timepoint(start)} TO {format_timepoint(end)}"
        case _:
            assert_never(w)


def format_expr(e: ast.Expr) -> str:
    """One expression as EQL text."""
    match e:
        case ast.IntLiteral(value=v):
            return str(v)
        case ast.DecimalLiteral(value=v):
            text = format(v, "f")
            return text if "." in text else text + ".0"
        case ast.StringLiteral(value=v):
            return _string(v)
        case ast.BoolLiteral(value=v):
            return "TRUE" if v else "FALSE"
        case ast.NullLiteral():
            return "NULL"
        case ast.DateLiteral(value=v):
            return f"DATE '{v.isoformat()}'"
        case ast.TimestampLiteral(value=v):
            return _timestamp(v)
        case ast.Param(name=name):
            return "$" + name
        case ast.Path():
            return _path(e)
        case ast.Call():
            return _call(e)
        case ast.AsOfValue(path=path, time=time):
            return f"({_path(path)} AS OF {format_timepoint(time)})"
        case ast.Case():
            return _case(e)
        case ast.Negate(operand=operand):
            text = _sub(operand, _UNARY)
            return "- " + text if text.startswith("-") else "-" + text
        case ast.Arith(op=op, left=left, right=right):
            level = _level(e)
            return f"{_sub(left, level)} {op.value} {_sub(right, level + 1)}"
        case ast.Compare(op=op, left=left, right=right):
            return f"{_sub(left, _SUM)} {op.value} {_sub(right, _SUM)}"
        case ast.IsNull(operand=operand, negated=negated):
            return f"{_sub(operand, _SUM)} IS {_not(negated)}NULL"
        case ast.InList(operand=operand, items=items, negated=negated):
            inner = ", ".join(format_expr(x) for x in items)
            return f"{_sub(operand, _SUM)} {_not(negated)}IN ({inner})"
        case ast.InParam(operand=operand, param=param, negated=negated):
            return f"{_sub(operand, _SUM)} {_not(negated)}IN ${param.name}"
        case ast.Between(operand=operand, low=low, high=high, negated=negated):
            return (
                f"{_sub(operand, _SUM)} {_not(negated)}BETWEEN"
                f" {_sub(low, _SUM)} AND {_sub(high, _SUM)}"
            )
        case ast.Like(operand=operand, pattern=pattern, negated=negated):
            return f"{_sub(operand, _SUM)} {_not(negated)}LIKE {_sub(pattern, _SUM)}"
        case ast.InSegment(segment=segment):
            return f"IN SEGMENT {format_ident(segment.name)}"
        case ast.Did():
            return _did(e)
        case ast.Not(operand=operand):
            return "NOT " + _sub(operand, _NOT)
        case ast.Logical(op=op, operands=operands):
            need = _AND if op is ast.LogicalOp.OR else _NOT
            return f" {op.value} ".join(_sub(x, need) for x in operands)
        case _:
            assert_never(e)


def _return_item(r: ast.ReturnItem) -> str:
    text = format_expr(r.expr)
    return text if r.alias is None else f"{text} AS {format_ident(r.alias.name)}"


def _order_item(o: ast.OrderItem) -> str:
    text = format_expr(o.expr)
    if o.direction is ast.SortDirection.DESC:
        text += " DESC"
    if o.nulls is not None:
        text += f" NULLS {o.nulls.value}"
    return text


def _query_tail(q: ast.Find | ast.FindEvents) -> list[str]:
    lines = []
    if q.where is not None:
        lines.append(f"WHERE {format_expr(q.where)}")
    if q.group_by:
        lines.append("GROUP BY " + ", ".join(format_expr(x) for x in q.group_by))
    if q.returns:
        lines.append("RETURN " + ", ".join(_return_item(r) for r in q.returns))
    if q.order_by:
        lines.append("ORDER BY " + ", ".join(_order_item(o) for o in q.order_by))
    if q.limit is not None:
        lines.append(f"LIMIT {format_expr(q.limit)}")
    if q.as_of is not None:
        lines.append(f"AS OF {format_timepoint(q.as_of)}")
    return lines


def format_statement(stmt: ast.Statement) -> str:
    """Canonical EQL text for a statement (no trailing `;`)."""
    match stmt:
        case ast.Find(entity=entity):
            return "\n".join([f"FIND {format_ident(entity.name)}", *_query_tail(stmt)])
        case ast.FindEvents(stream=stream, during=during):
            head = f"FIND EVENTS {format_ident(stream.name)}"
            lines = [head] if during is None else [head, f"DURING {format_window(during)}"]
            return "\n".join(lines + _query_tail(stmt))
        case ast.Explain(stage=stage, statement=inner):
            prefix = "EXPLAIN" if stage is None else f"EXPLAIN {stage.value}"
            return f"{prefix} {format_statement(inner)}"
        case ast.ExplainMembership(segment=segment, key=key):
            return f"EXPLAIN MEMBERSHIP {format_ident(segment.name)} FOR {format_expr(key)}"
        case ast.DefineTag(name=name, entity=entity, expr=expr):
            head = f"DEFINE TAG {format_ident(name.name)} ON {format_ident(entity.name)}"
            return f"{head} AS\n  {format_expr(expr)}"
        case ast.DefineSegment(name=name, entity=entity, where=where):
            head = f"DEFINE SEGMENT {format_ident(name.name)} ON {format_ident(entity.name)}"
            return f"{head}\nWHERE {format_expr(where)}"
        case ast.DefineClusters(name=name, entity=entity, k=k, seed=seed, features=features):
            head = (
                f"DEFINE CLUSTERS {format_ident(name.name)} ON {format_ident(entity.name)}"
                f" K {k.value} SEED {seed.value} FEATURES ("
            )
            items = ",\n".join(
                f"  {format_ident(f.name.name)} = {format_expr(f.expr)}" for f in features
            )
            return f"{head}\n{items})"
        case ast.Refresh(kind=kind, name=name):
            return f"REFRESH {kind.value} {format_ident(name.name)}"
        case ast.Drop(kind=kind, name=name):
            return f"DROP {kind.value} {format_ident(name.name)}"
        case ast.Describe(kind=kind, name=name):
            return f"DESCRIBE {kind.value} {format_ident(name.name)}"
        case ast.Show(kind=kind):
            plural = {ast.ObjectKind.TAG: "TAGS", ast.ObjectKind.SEGMENT: "SEGMENTS"}
            return f"SHOW {plural.get(kind, kind.value)}"
        case _:
            assert_never(stmt)
