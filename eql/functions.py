"""The registry of built-in scalar functions: name, signature check and result type.

Aggregates (count, sum, avg, min, max, first, last) are known to the binder by `AGGREGATES`. How a
function runs is the emitter's business (`eql/planner/to_datafusion.py` keeps one implementation
per name here; a structure test checks that none is missing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from eql import types
from eql.types import Kind, Type

AGGREGATES = ("count", "sum", "avg", "min", "max", "first", "last")


class SignatureError(Exception):
    """Arguments that do not fit; the message says what the function takes."""


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    signature: str  # for messages and docs: "days_since(date | timestamp) -> int"
    min_args: int
    max_args: int | None
    result: Callable[[tuple[Type, ...]], Type]
    doc: str
    needs_reference_time: bool = False  # the binder appends the reference time as last argument
    # the types parameters and string literals take in each argument (the last one repeats)
    hints: tuple[Type, ...] = ()
    null_propagating: bool = True  # a null argument makes the result null

    def hint(self, i: int) -> Type | None:
        if not self.hints:
            return None
        return self.hints[min(i, len(self.hints) - 1)]


def _expect(cond: bool, sig: str) -> None:
    if not cond:
        raise SignatureError(sig)


def _temporal(sig: str, out: Type) -> Callable[[tuple[Type, ...]], Type]:
    def check(args: tuple[Type, ...]) -> Type:
        _expect(args[0].temporal or args[0].kind is Kind.NULL, sig)
        return out

    return check


def _strings(sig: str, out: Type) -> Callable[[tuple[Type, ...]], Type]:
    def check(args: tuple[Type, ...]) -> Type:
        _expect(all(a.kind in (Kind.STRING, Kind.NULL) for a in args), sig)
        return out

    return check


def _numeric_same(sig: str) -> Callable[[tuple[Type, ...]], Type]:
    def check(args: tuple[Type, ...]) -> Type:
        _expect(args[0].numeric or args[0].kind is Kind.NULL, sig)
        for a in args[1:]:
            _expect(a.kind in (Kind.INT, Kind.NULL), sig)
        return types.plain(args[0])

    return check


def _common(sig: str) -> Callable[[tuple[Type, ...]], Type]:
    def check(args: tuple[Type, ...]) -> Type:
        out = args[0]
        for a in args[1:]:
            w = types.widen(out, a)
            _expect(w is not None, sig)
            assert w is not None
            out = w
        return types.plain(out)

    return check


def _substr(args: tuple[Type, ...]) -> Type:
    sig = "substr(string, start int [, length int]) -> string"
    _expect(args[0].kind in (Kind.STRING, Kind.NULL), sig)
    _expect(all(a.kind in (Kind.INT, Kind.NULL) for a in args[1:]), sig)
    return types.STRING


def _date_part(args: tuple[Type, ...]) -> Type:
    sig = "date_part('year'|'month'|'day'|'hour'|'dow'|'week', date | timestamp) -> int"
    _expect(args[0].kind is Kind.STRING and (args[1].temporal or args[1].kind is Kind.NULL), sig)
    # the part must be a literal: the binder checks that (E206)
    return types.INT


def _fn(
    name: str,
    sig: str,
    lo: int,
    hi: int | None,
    result: Callable[[tuple[Type, ...]], Type],
    doc: str,
    ref: bool = False,
) -> Function:
    hints: tuple[Type, ...] = ()
    if name in ("days_since", "day", "week", "month", "year"):
        hints = (types.TIMESTAMP,)
    elif name == "date_part":
        hints = (types.STRING, types.TIMESTAMP)
    elif name in (
        "lower",
        "upper",
        "trim",
        "length",
        "concat",
        "starts_with",
        "ends_with",
        "contains",
    ):
        hints = (types.STRING,)
    elif name == "substr":
        hints = (types.STRING, types.INT)
    elif name == "round":
        hints = (types.FLOAT, types.INT)
    elif name in ("abs", "floor", "ceil"):
        hints = (types.FLOAT,)
    propagating = name not in ("coalesce", "least", "greatest", "concat")
    return Function(name, sig, lo, hi, result, doc, ref, hints, propagating)


_TRUNC = "{0}(date | timestamp) -> date"
REGISTRY: dict[str, Function] = {
    f.name: f
    for f in (
        _fn(
            "days_since",
            "days_since(date | timestamp) -> int",
            1,
            1,
            _temporal("days_since(date | timestamp) -> int", types.INT),
            "Whole days from the value to the reference time (null stays null).",
            ref=True,
        ),
        _fn(
            "day",
            _TRUNC.format("day"),
            1,
            1,
            _temporal(_TRUNC.format("day"), types.DATE),
            "The calendar day (UTC) of a timestamp, as a date.",
        ),
        _fn(
            "week",
            _TRUNC.format("week"),
            1,
            1,
            _temporal(_TRUNC.format("week"), types.DATE),
            "The Monday that starts the value's ISO week, as a date.",
        ),
        _fn(
            "month",
            _TRUNC.format("month"),
            1,
            1,
            _temporal(_TRUNC.format("month"), types.DATE),
            "The first day of the value's month, as a date.",
        ),
        _fn(
            "year",
            _TRUNC.format("year"),
            1,
            1,
            _temporal(_TRUNC.format("year"), types.DATE),
            "The first day of the value's year, as a date.",
        ),
        _fn(
            "date_part",
            "date_part(part, date | timestamp) -> int",
            2,
            2,
            _date_part,
            "A numeric part: 'year', 'month', 'day', 'hour', 'dow' (0 = Sunday), 'week' (ISO).",
        ),
        _fn(
            "coalesce",
            "coalesce(a, b, ...) -> common type",
            1,
            None,
            _common("coalesce(a, b, ...): arguments of one type"),
            "The first argument that is not null.",
        ),
        _fn(
            "least",
            "least(a, b, ...) -> common type",
            1,
            None,
            _common("least(a, b, ...): arguments of one type"),
            "The smallest non-null argument.",
        ),
        _fn(
            "greatest",
            "greatest(a, b, ...) -> common type",
            1,
            None,
            _common("greatest(a, b, ...): arguments of one type"),
            "The largest non-null argument.",
        ),
        _fn(
            "lower",
            "lower(string) -> string",
            1,
            1,
            _strings("lower(string)", types.STRING),
            "Lower-case text.",
        ),
        _fn(
            "upper",
            "upper(string) -> string",
            1,
            1,
            _strings("upper(string)", types.STRING),
            "Upper-case text.",
        ),
        _fn(
            "trim",
            "trim(string) -> string",
            1,
            1,
            _strings("trim(string)", types.STRING),
            "Text without leading and trailing spaces.",
        ),
        _fn(
            "length",
            "length(string) -> int",
            1,
            1,
            _strings("length(string)", types.INT),
            "The number of characters.",
        ),
        _fn(
            "concat",
            "concat(string, ...) -> string",
            1,
            None,
            _strings("concat(string, ...)", types.STRING),
            "Text joined; nulls count as empty.",
        ),
        _fn(
            "starts_with",
            "starts_with(string, prefix) -> bool",
            2,
            2,
            _strings("starts_with(string, string)", types.BOOL),
            "Whether text starts with a prefix.",
        ),
        _fn(
            "ends_with",
            "ends_with(string, suffix) -> bool",
            2,
            2,
            _strings("ends_with(string, string)", types.BOOL),
            "Whether text ends with a suffix.",
        ),
        _fn(
            "contains",
            "contains(string, part) -> bool",
            2,
            2,
            _strings("contains(string, string)", types.BOOL),
            "Whether text contains a part.",
        ),
        _fn(
            "substr",
            "substr(string, start [, length]) -> string",
            2,
            3,
            _substr,
            "Part of a text; the first character is at 1.",
        ),
        _fn(
            "abs",
            "abs(number) -> number",
            1,
            1,
            _numeric_same("abs(number)"),
            "The absolute value.",
        ),
        _fn(
            "round",
            "round(number [, digits int]) -> number",
            1,
            2,
            _numeric_same("round(number [, digits int])"),
            "Rounded half away from zero.",
        ),
        _fn(
            "floor",
            "floor(number) -> number",
            1,
            1,
            _numeric_same("floor(number)"),
            "Rounded down.",
        ),
        _fn("ceil", "ceil(number) -> number", 1, 1, _numeric_same("ceil(number)"), "Rounded up."),
    )
}


def lookup(name: str) -> Function | None:
    return REGISTRY.get(name.lower())


_DAYS = (
    "EQL has no {0}: days_since(t) counts the whole days from t to the reference time, so the days"
    " from a to b are `days_since(a) - days_since(b)` (exact for dates)"
)
_NOW = (
    "EQL has no {0}: the reference time is the query's AS OF (else the caller's time);"
    " days_since(t) and DURING LAST ... count back from it"
)
# Functions of SQL dialects that people reach for, and what EQL writes instead (the hint of E205).
SQL_NAMES: dict[str, str] = {
    **{
        n: _DAYS.format(n)
        for n in ("datediff", "date_diff", "timestampdiff", "days_between", "age", "julianday")
    },
    **{
        n: _NOW.format(n)
        for n in ("now", "current_date", "current_timestamp", "getdate", "today", "sysdate")
    },
    **{
        n: f"EQL has no {n}: day(t), week(t), month(t) and year(t) truncate a date or timestamp"
        for n in ("date_trunc", "trunc", "datetrunc")
    },
    **{
        n: f"EQL has no {n}: date_part('year', t) (or 'month', 'day', 'hour', 'dow', 'week')"
        for n in ("extract", "datepart")
    },
    **{n: f"EQL has no {n}: coalesce(a, b)" for n in ("ifnull", "nvl", "isnull")},
    **{n: f"EQL has no {n}: length(s)" for n in ("len", "char_length", "character_length")},
    "substring": "EQL has no substring: substr(s, start [, length])",
    "ceiling": "EQL has no ceiling: ceil(x)",
    **{
        n: f"EQL has no {n}: contains(s, part), starts_with(s, p), ends_with(s, p)"
        for n in ("strpos", "instr", "position", "locate")
    },
    "count_distinct": "EQL has no count_distinct: count(DISTINCT x)",
}
