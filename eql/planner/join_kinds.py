"""Choose how each WHERE conjunct over an aggregate source is joined (the costly shapes avoided).

- `DID src ...` (count > 0) becomes a semi-join with the source's filtered elements;
- `NOT DID src ...` becomes an anti-join;
- a conjunct that is false or null when a source has no elements (e.g. `count(purchase) >= 3`,
  `sum(purchase.amount) > 500`) lets that source's pre-aggregated relation be inner-joined.

Pure analysis over the bound IR; the lowering applies the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eql.binder import bound

UNKNOWN = object()


@dataclass(frozen=True, slots=True)
class Existence:
    """Keep rows with (or, negated, without) an element of `source` passing filter/window."""

    source: bound.Source
    filter: bound.BExpr | None
    window: bound.Window | None
    negated: bool


@dataclass(frozen=True, slots=True)
class JoinPlan:
    existence: tuple[Existence, ...]
    inner: frozenset[bound.Source]
    rest: tuple[bound.BExpr, ...]


def conjuncts(e: bound.BExpr | None) -> list[bound.BExpr]:
    if e is None:
        return []
    if isinstance(e, bound.Binary) and e.op is bound.BinOp.AND:
        return conjuncts(e.left) + conjuncts(e.right)
    return [e]


def _did(e: bound.BExpr) -> bound.Aggregate | None:
    if (
        isinstance(e, bound.Binary)
        and e.op is bound.BinOp.GT
        and isinstance(e.right, bound.Literal)
        and e.right.value == 0
        and isinstance(e.left, bound.Aggregate)
        and e.left.func is bound.AggFunc.COUNT
        and e.left.arg is None
        and e.left.source is not None
        and not e.left.source.path.steps
    ):
        return e.left
    return None


def classify(where: bound.BExpr | None) -> JoinPlan:
    existence: list[Existence] = []
    inner: set[bound.Source] = set()
    rest: list[bound.BExpr] = []
    for c in conjuncts(where):
        agg = _did(c)
        if agg is not None and agg.source is not None:
            existence.append(Existence(agg.source, agg.filter, agg.window, False))
            continue
        if isinstance(c, bound.Unary) and c.op is bound.UnaryOp.NOT:
            agg = _did(c.arg)
            if agg is not None and agg.source is not None:
                existence.append(Existence(agg.source, agg.filter, agg.window, True))
                continue
        rest.append(c)
        for source in _root_sources(c):
            if _value_when_empty(c, source) in (False, None):
                inner.add(source)
    return JoinPlan(tuple(existence), frozenset(inner), tuple(rest))


def _root_sources(e: bound.BExpr) -> set[bound.Source]:
    found: set[bound.Source] = set()
    if isinstance(e, bound.Aggregate) and e.source is not None:
        if not e.source.path.steps:
            found.add(e.source)
        return found
    for c in bound.children(e):
        found |= _root_sources(c)
    return found


def _value_when_empty(e: bound.BExpr, source: bound.Source) -> Any:
    """The conjunct's value for a row without elements of `source`, or UNKNOWN."""
    match e:
        case bound.Aggregate(source=s, func=f) if s == source:
            return 0 if f in (bound.AggFunc.COUNT, bound.AggFunc.SUM) else None
        case bound.Literal(value=v) | bound.Param(value=v):
            return v
        case bound.Unary(op=bound.UnaryOp.NOT, arg=arg):
            v = _value_when_empty(arg, source)
            return UNKNOWN if v is UNKNOWN else (None if v is None else not v)
        case bound.Binary(op=op, left=left, right=right):
            a = _value_when_empty(left, source)
            b = _value_when_empty(right, source)
            return _binary(op, a, b)
        case bound.IsNull(arg=arg, negated=neg):
            v = _value_when_empty(arg, source)
            return UNKNOWN if v is UNKNOWN else ((v is not None) if neg else (v is None))
    return UNKNOWN


def _binary(op: bound.BinOp, a: Any, b: Any) -> Any:
    if op is bound.BinOp.AND:
        if a is False or b is False:
            return False
        if a is UNKNOWN or b is UNKNOWN:
            return UNKNOWN
        return None if a is None or b is None else True
    if op is bound.BinOp.OR:
        if a is True or b is True:
            return True
        if a is UNKNOWN or b is UNKNOWN:
            return UNKNOWN
        return None if a is None or b is None else False
    if a is UNKNOWN or b is UNKNOWN:
        return UNKNOWN
    if a is None or b is None:
        return None
    try:
        match op:
            case bound.BinOp.EQ:
                return a == b
            case bound.BinOp.NE:
                return a != b
            case bound.BinOp.LT:
                return a < b
            case bound.BinOp.LE:
                return a <= b
            case bound.BinOp.GT:
                return a > b
            case bound.BinOp.GE:
                return a >= b
            case bound.BinOp.ADD:
                return a + b
            case bound.BinOp.SUB:
                return a - b
            case bound.BinOp.MUL:
                return a * b
    except TypeError:
        return UNKNOWN
    return UNKNOWN
