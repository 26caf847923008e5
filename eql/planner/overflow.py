"""The engine-neutral part of the integer overflow checks: which expressions and sums are checked,
how large their operands may be before a step can leave int64, and how a failed check is named.

`eql.planner.to_datafusion` emits the checks (`_checked` for `+ - *` and negation, `_aggregated`
for `sum`) from what is decided here; nothing here builds an engine's expression or reads its
errors.

May import: `eql.planner.logical`, `eql.planner.rules.walk`, `eql.binder.bound`, `eql.types`, the
standard library.
"""

from __future__ import annotations

from eql.binder import bound
from eql.binder.bound import BinOp, UnaryOp
from eql.planner import logical
from eql.planner.rules.walk import expr_children
from eql.types import Kind

MAX = 2**63 - 1
MIN = -(2**63)
_INT_OPS = (BinOp.ADD, BinOp.SUB, BinOp.MUL)


# ---- `+ - *` and negation ------------------------------------------------------------------
# DataFusion's int64 `+ - *` wrap around (9223372036854775807 + 1 is -9223372036854775808). A tree
# of integer `+ - *` and negation is emitted twice over the same operands (its "leaves"): wrapping
# (DataFusion's own) and strict (each step in decimal, cast back to int64: a cast that fails with
# the true value when a step leaves int64). From the tree's constants (and the leaves whose
# values are small, like `days_since`), `safe_limit` finds the largest `L` such that no step can
# leave int64 while every other leaf is within [-L, L] (and wrapping, arithmetic modulo 2**64, is
# then exact), and the tree becomes
# `CASE WHEN x < -L OR x > L OR y < -L ... THEN strict ELSE wrapping END`: two comparisons per
# leaf on every row, the strict form only on the rows near the edge (usually none). A null leaf
# makes its own steps null and the others are still checked, as SQL does. The expression stays
# small, which matters as much: DataFusion plans it anew at every run. A leaf is repeated three
# times, so a tree whose leaves hold trees that hold trees (nested through calls) is emitted
# strict alone, to keep the expression from growing with the nesting.
# Not checked: DataFusion's simplifier turns `x * 0` (and `0 * x`, with a constant zero: a
# literal, a parameter, `1 - 1`) into 0 when x cannot be null, so an overflow inside x is never
# computed there: `(id + 9223372036854775807) * 0` is 0 (with a nullable x it is E303).
def int_arith(e: logical.LExpr) -> bool:
    """`e` is an integer `+ - *` or negation (a step of a tree that `_checked` emits)."""
    match e:
        case logical.LBinary(op=op, type=t) if op in _INT_OPS:
            return t.kind is Kind.INT
        case logical.LUnary(op=UnaryOp.NEG, type=t):
            return t.kind is Kind.INT
    return False


def leaves(e: logical.LExpr) -> list[logical.LExpr]:
    """The operands of the tree of integer steps at `e`: what is not itself such a step."""
    out: list[logical.LExpr] = []
    for c in expr_children(e):
        out.extend(leaves(c) if int_arith(c) else (c,))
    return out


def nesting(e: logical.LExpr) -> int:
    """How many integer arithmetic trees are nested in `e` along one path, at most."""
    if int_arith(e):
        return 1 + max((nesting(x) for x in leaves(e)), default=0)
    return max((nesting(c) for c in expr_children(e)), default=0)


# functions whose int64 result is small whatever their arguments (so it needs no guard): the
# whole days in an int64 count of microseconds (< 1.1e8), a date part (a date32's year < 5.9e6)
_BOUNDED = {"days_since": 2**27, "date_part": 2**23}


def known_bound(e: logical.LExpr) -> int | None:
    """A bound on |e| known from the expression alone (a literal, a small function), or None."""
    if isinstance(e, logical.LLit):
        return abs(e.value) if isinstance(e.value, int) else 0
    if isinstance(e, logical.LCall):
        return _BOUNDED.get(e.func)
    return None


def _peak(e: logical.LExpr, limit: int) -> tuple[int, int]:
    """(a bound on |value|, a bound on |every step|) of `e` when each leaf whose size is not
    known (`known_bound`) is within [-limit, limit]."""
    if not int_arith(e):
        known = known_bound(e)
        return (limit if known is None else known), 0
    parts = [_peak(c, limit) for c in expr_children(e)]
    if isinstance(e, logical.LUnary):
        value = parts[0][0]
    elif isinstance(e, logical.LBinary) and e.op is BinOp.MUL:
        value = parts[0][0] * parts[1][0]
    else:
        value = parts[0][0] + parts[1][0]
    return value, max(value, *(step for _, step in parts))


def safe_limit(tree: logical.LExpr) -> int | None:
    """The largest `L` for which no step of `tree` can leave int64 (None: not even 0)."""
    if _peak(tree, 0)[1] > MAX:
        return None
    lo, hi = 0, MAX
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _peak(tree, mid)[1] <= MAX else (lo, mid - 1)
    return lo


# ---- sum() over integers ---------------------------------------------------------------------
# DataFusion's int64 `sum` wraps around like its `+`. A sum whose value may leave int64 is
# emitted with a float64 sum of the same values beside it, in the same aggregate (one pass).
# int64 addition is arithmetic modulo 2**64, so the int64 sum W is the true sum S exactly when S
# fits int64 (whatever the partial sums did on the way: MAX + MAX - MAX is MAX), and otherwise
# W = S - k * 2**64 for some k != 0. The float sum F is S but for its rounding error e, so
# |F - W| <= e when S fits and >= 2**64 - e when it does not: with e < 2**62, `|F - W| > 2**62`
# is overflow, exactly, and then S = W + round((F - W) / 2**64) * 2**64, exactly too (the error
# names it: `sum_message`). The error of a float sum of n values in any order (DataFusion adds
# partial sums per partition, then merges them) is at most about (n + 1) * 2**-53 * sum(|x|)
# (each value's conversion to float and each addition rounds by at most half a unit in the last
# place of a number no larger than sum(|x|)), so e < 2**62 whenever (n + 1) * sum(|x|) < 2**115:
# for any group of fewer than 2**26 (67 million) values whatever they are (|x| <= 2**63), of
# 2**37 values below 2**40, ...: beyond the groups of a store by far. A sum(DISTINCT ...) cannot
# take a float sum of its distinct values (two int64 values can be one float), so it sums exact
# decimals (int64 as decimal(19, 0), into decimal(29, 0)) and checks the result's range.
SUM_GAP = float(2**62)  # |F - W| above this is an overflow (see above)
_LABEL = 60  # the longest text naming a sum in a message


def sum_check(a: bound.Aggregate) -> str | None:
    """For an integer `sum` whose value may leave int64, the text naming it in the error (what
    the user wrote, whitespace folded); None for any other aggregate. A sum of counts is not
    checked: it counts rows, far fewer than 2**63."""
    if a.func is not bound.AggFunc.SUM or a.type.kind is not Kind.INT:
        return None
    if isinstance(a.arg, bound.Aggregate) and a.arg.func is bound.AggFunc.COUNT:
        return None
    text = " ".join(a.text.split()) or "sum(...)"
    return text if len(text) <= _LABEL else text[: _LABEL - 3] + "..."


# A sum that leaves int64 fails while running by casting to int64 the text
# `<SUM_MARKER><label> is <W> ~ <F>` (a DISTINCT sum's exact value twice), which DataFusion refuses
# with that text in its error: the emitter finds it there, and `sum_message` names the sum and
# its true value.
SUM_MARKER = "eql sum overflow: "


def sum_message(label: str, wrapped: int, approx: float) -> str:
    """The message for the sum `label` whose int64 sum is `wrapped` and float sum `approx`."""
    true = wrapped + round((approx - wrapped) / 2**64) * 2**64
    return f"integer overflow: `{label}` is {true}, outside the 64-bit integers"


# the hints of an overflow while running, by what overflowed
INT_HINT = (
    "integers are 64-bit (-9223372036854775808 to 9223372036854775807); to go past them, write "
    "one side as a decimal (38 digits), e.g. `x * 1.0`"
)
SUM_HINT = (
    "a sum of integers is a 64-bit integer too; sum decimals (38 digits) to go past it, "
    "e.g. `sum(x * 1.0)`"
)
DECIMAL_HINT = "decimals hold up to 38 digits; round or scale the values before this step"
