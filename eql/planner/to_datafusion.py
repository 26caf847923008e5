"""Emit the logical plan as DataFusion DataFrame/Expr calls: the only module importing datafusion.

Columns are named c<N> after their ColumnId; only the final `Output` aliases them to the names the
user sees. No SQL text is built or executed. Integer `+ - *` and negation are emitted so that they
fail (`Overflow`) rather than wrap around as DataFusion's kernels do (see `_checked`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import re
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, assert_never

import pyarrow as pa
from datafusion import (
    DataFrame,
    Expr,
    RuntimeEnvBuilder,
    SessionConfig,
    SessionContext,
    col,
    functions,
    lit,
)
from datafusion.record_batch import RecordBatchStream

from eql.binder.bound import AggFunc, BinOp, UnaryOp
from eql.catalog import EntityTable, SegmentRef, StreamTable, TableRef, TagRef
from eql.diagnostics import InternalError
from eql.planner import logical
from eql.planner.rules.walk import expr_children
from eql.types import Kind, Type

ARROW_TS = pa.timestamp("us", tz="UTC")
DAY_US = 86_400_000_000


def arrow_type(t: Type) -> pa.DataType:
    match t.kind:
        case Kind.INT:
            return pa.int64()
        case Kind.DECIMAL:
            return pa.decimal128(t.precision, t.scale)
        case Kind.FLOAT:
            return pa.float64()
        case Kind.STRING:
            return pa.string()
        case Kind.BOOL:
            return pa.bool_()
        case Kind.DATE:
            return pa.date32()
        case Kind.TIMESTAMP:
            return ARROW_TS
        case Kind.DURATION:
            return pa.duration("us")
        case Kind.NULL:
            return pa.null()
    raise InternalError(f"no Arrow type for {t}")


def literal(value: Any, t: Type) -> Expr:
    if value is None:
        return lit(pa.scalar(None, type=arrow_type(t) if t.kind is not Kind.NULL else pa.null()))
    if t.kind is Kind.TIMESTAMP and isinstance(value, dt.datetime):
        return lit(pa.scalar(value, type=ARROW_TS))
    if t.kind is Kind.DECIMAL:
        return lit(pa.scalar(decimal.Decimal(value), type=arrow_type(t)))
    return lit(pa.scalar(value, type=arrow_type(t)))


def _like_regex(pattern: str) -> str:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return "(?s)^" + "".join(out) + "$"


def _to_us(e: Expr, t: Type) -> Expr:
    if t.kind is Kind.DATE:
        e = e.cast(ARROW_TS)
    return e.cast(pa.int64())


def _trunc(unit: str) -> Callable[[list[Expr], list[Type]], Expr]:
    def emit(args: list[Expr], types: list[Type]) -> Expr:
        value = args[0].cast(ARROW_TS) if types[0].kind is Kind.DATE else args[0]
        return functions.date_trunc(unit, value).cast(pa.date32())

    return emit


def _days_since(args: list[Expr], types: list[Type]) -> Expr:
    diff = _to_us(args[1], types[1]) - _to_us(args[0], types[0])
    return functions.floor(diff.cast(pa.float64()) / lit(float(DAY_US))).cast(pa.int64())


FUNCTIONS: dict[str, Callable[[list[Expr], list[Type]], Expr]] = {
    "days_since": _days_since,
    "day": _trunc("day"),
    "week": _trunc("week"),
    "month": _trunc("month"),
    "year": _trunc("year"),
    "coalesce": lambda a, t: functions.coalesce(*a),
    "least": lambda a, t: functions.least(*a),
    "greatest": lambda a, t: functions.greatest(*a),
    "lower": lambda a, t: functions.lower(a[0]),
    "upper": lambda a, t: functions.upper(a[0]),
    "trim": lambda a, t: functions.btrim(a[0]),
    "length": lambda a, t: functions.character_length(a[0]).cast(pa.int64()),
    "concat": lambda a, t: functions.concat(*a),
    "starts_with": lambda a, t: functions.starts_with(a[0], a[1]),
    "ends_with": lambda a, t: functions.ends_with(a[0], a[1]),
    "contains": lambda a, t: functions.contains(a[0], a[1]),
    "substr": lambda a, t: (
        functions.substring(a[0], a[1], a[2]) if len(a) == 3 else functions.substr(a[0], a[1])
    ),
    "abs": lambda a, t: functions.abs(a[0]),
    "round": lambda a, t: functions.round(a[0], a[1]) if len(a) == 2 else functions.round(a[0]),
    "floor": lambda a, t: functions.floor(a[0]),
    "ceil": lambda a, t: functions.ceil(a[0]),
}


def expr(e: logical.LExpr) -> Expr:
    match e:
        case logical.LCol(id=cid):
            return col(str(cid))
        case logical.LLit(value=v, type=t):
            return literal(v, t)
        case logical.LCall(func="date_part", args=(logical.LLit(value=str() as part), value)):
            # the binder admits only literal parts (DataFusion takes them as Python values)
            return functions.date_part(part, expr(value)).cast(pa.int64())
        case logical.LCall(func=f, args=args):
            impl = FUNCTIONS.get(f)
            if impl is None:
                raise InternalError(f"no DataFusion emitter for function {f}")
            return impl([expr(a) for a in args], [a.type for a in args])
        case logical.LUnary() | logical.LBinary() if _int_arith(e):
            return _checked(e)
        case logical.LUnary(op=op, arg=arg, type=t):
            return ~expr(arg) if op is UnaryOp.NOT else literal(0, t) - expr(arg)
        case logical.LBinary(op=op, left=left, right=right, type=t):
            return _binary(op, left, right, t)
        case logical.LIsNull(arg=arg, negated=neg):
            return expr(arg).is_not_null() if neg else expr(arg).is_null()
        case logical.LInList(arg=arg, items=items, negated=neg):
            return functions.in_list(expr(arg), [expr(i) for i in items], negated=neg)
        case logical.LLike(arg=arg, pattern=logical.LLit(value=str() as p), negated=neg):
            matched = functions.regexp_like(expr(arg), lit(_like_regex(p)))
            return ~matched if neg else matched
        case logical.LLike():
            raise InternalError("LIKE needs a literal pattern")
        case logical.LCase(whens=whens, otherwise=other):
            first_cond, first_val = whens[0]
            builder = functions.when(expr(first_cond), expr(first_val))
            for c, v in whens[1:]:
                builder = builder.when(expr(c), expr(v))
            return builder.otherwise(expr(other)) if other is not None else builder.end()
        case logical.LCast(arg=arg, type=t):
            return expr(arg).cast(arrow_type(t))
        case _:
            assert_never(e)


# ---- integer arithmetic that does not wrap ----------------------------------------------------
# DataFusion's int64 `+ - *` wrap around (9223372036854775807 + 1 is -9223372036854775808). A tree
# of integer `+ - *` and negation is emitted twice over the same operands (its "leaves"): wrapping
# (DataFusion's own) and strict (each step in decimal, cast back to int64: a cast that fails with
# the true value when a step leaves int64). Here, from the tree's constants (and the leaves whose
# values are small, like `days_since`), the largest `L` is found such that no step can leave
# int64 while every other leaf is within [-L, L] (and wrapping, arithmetic modulo 2**64, is then
# exact), and the tree becomes
# `CASE WHEN x < -L OR x > L OR y < -L ... THEN strict ELSE wrapping END`: two comparisons per
# leaf on every row, the strict form only on the rows near the edge (usually none). A null leaf
# makes its own steps null and the others are still checked, as SQL does. The expression stays
# small, which matters as much: DataFusion plans it anew at every run. A leaf is repeated three
# times, so a tree whose leaves hold trees that hold trees (nested through calls) is emitted
# strict alone, to keep the expression from growing with the nesting. (DataFusion's simplifier
# turns `x * 0` into 0 when x cannot be null, steps of x and their overflow included.)
_INT_OPS = (BinOp.ADD, BinOp.SUB, BinOp.MUL)
_STEP = pa.decimal128(19, 0)  # an int64 value, exactly; a sum or product of two of them fits
_MAX = 2**63 - 1


def _int_arith(e: logical.LExpr) -> bool:
    match e:
        case logical.LBinary(op=op, type=t) if op in _INT_OPS:
            return t.kind is Kind.INT
        case logical.LUnary(op=UnaryOp.NEG, type=t):
            return t.kind is Kind.INT
    return False


def _leaves(e: logical.LExpr) -> Iterator[logical.LExpr]:
    for c in expr_children(e):
        if _int_arith(c):
            yield from _leaves(c)
        else:
            yield c


def _nesting(e: logical.LExpr) -> int:
    """How many integer arithmetic trees are nested in `e` along one path, at most."""
    if _int_arith(e):
        return 1 + max((_nesting(x) for x in _leaves(e)), default=0)
    return max((_nesting(c) for c in expr_children(e)), default=0)


# functions whose int64 result is small whatever their arguments (so it needs no guard): the
# whole days in an int64 count of microseconds (< 1.1e8), a date part (a date32's year < 5.9e6)
_BOUNDED = {"days_since": 2**27, "date_part": 2**23}


def _known_bound(e: logical.LExpr) -> int | None:
    if isinstance(e, logical.LLit):
        return abs(e.value) if isinstance(e.value, int) else 0
    if isinstance(e, logical.LCall):
        return _BOUNDED.get(e.func)
    return None


def _peak(e: logical.LExpr, limit: int) -> tuple[int, int]:
    """(a bound on |value|, a bound on |every step|) of `e` when each leaf whose size is not
    known (`_known_bound`) is within [-limit, limit]."""
    if not _int_arith(e):
        known = _known_bound(e)
        return (limit if known is None else known), 0
    parts = [_peak(c, limit) for c in expr_children(e)]
    if isinstance(e, logical.LUnary):
        value = parts[0][0]
    elif isinstance(e, logical.LBinary) and e.op is BinOp.MUL:
        value = parts[0][0] * parts[1][0]
    else:
        value = parts[0][0] + parts[1][0]
    return value, max(value, *(step for _, step in parts))


def _safe_limit(tree: logical.LExpr) -> int | None:
    """The largest `L` for which no step of `tree` can leave int64 (None: not even 0)."""
    if _peak(tree, 0)[1] > _MAX:
        return None
    lo, hi = 0, _MAX
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _peak(tree, mid)[1] <= _MAX else (lo, mid - 1)
    return lo


def _step(op: BinOp, a: Expr, b: Expr) -> Expr:
    return a + b if op is BinOp.ADD else a - b if op is BinOp.SUB else a * b


def _checked(tree: logical.LExpr) -> Expr:
    emitted: dict[int, Expr] = {}

    def leaf(x: logical.LExpr) -> Expr:
        if id(x) not in emitted:
            emitted[id(x)] = expr(x)
        return emitted[id(x)]

    def fold(e: logical.LExpr, strict: bool) -> Expr:
        if not _int_arith(e):
            return leaf(e)
        if isinstance(e, logical.LUnary):
            arg = fold(e.arg, strict)
            if strict:
                return (literal(0, Type(Kind.DECIMAL, 19, 0)) - arg.cast(_STEP)).cast(pa.int64())
            return literal(0, e.type) - arg
        assert isinstance(e, logical.LBinary)
        a, b = fold(e.left, strict), fold(e.right, strict)
        if strict:
            return _step(e.op, a.cast(_STEP), b.cast(_STEP)).cast(pa.int64())
        return _step(e.op, a, b)

    leaves = list(_leaves(tree))
    limit = _safe_limit(tree)
    if limit is None or max(_nesting(x) for x in leaves) >= 2:
        return fold(tree, strict=True)
    outside = [
        (leaf(x) < lit(-limit)) | (leaf(x) > lit(limit))
        for i, x in enumerate(leaves)
        if _known_bound(x) is None and x not in leaves[:i]
    ]
    if not outside:  # no step can leave int64 (literals are checked by the binder)
        return fold(tree, strict=False)
    near = outside[0]
    for more in outside[1:]:
        near = near | more
    return functions.when(near, fold(tree, strict=True)).otherwise(fold(tree, strict=False))


def _binary(op: BinOp, left: logical.LExpr, right: logical.LExpr, t: Type) -> Expr:
    a, b = expr(left), expr(right)
    if op is BinOp.DIV and t.kind is Kind.FLOAT:
        a, b = a.cast(pa.float64()), b.cast(pa.float64())
    match op:
        case BinOp.ADD:
            return a + b
        case BinOp.SUB:
            return a - b
        case BinOp.MUL:
            return a * b
        case BinOp.DIV:  # by zero: null, not an error or infinity
            return a / functions.nullif(
                b, literal(0, right.type if right.type.numeric else Type(Kind.INT))
            )
        case BinOp.MOD:
            return a % functions.nullif(
                b, literal(0, right.type if right.type.numeric else Type(Kind.INT))
            )
        case BinOp.EQ:
            return a == b
        case BinOp.NE:
            return a != b
        case BinOp.LT:
            return a < b
        case BinOp.LE:
            return a <= b
        case BinOp.GT:
            return a > b
        case BinOp.GE:
            return a >= b
        case BinOp.AND:
            return a & b
        case BinOp.OR:
            return a | b
        case _:
            assert_never(op)


def aggregate(a: logical.LAgg) -> Expr:
    arg = expr(a.arg) if a.arg is not None else None
    flt = expr(a.filter) if a.filter is not None else None
    match a.func:
        case AggFunc.COUNT:
            return functions.count(arg, distinct=a.distinct, filter=flt)
        case AggFunc.SUM:
            assert arg is not None
            return functions.sum(arg, distinct=a.distinct, filter=flt)
        case AggFunc.AVG:
            assert arg is not None
            return functions.avg(
                arg.cast(pa.float64()) if a.type.kind is Kind.FLOAT else arg,
                distinct=a.distinct,
                filter=flt,
            )
        case AggFunc.MIN:
            assert arg is not None
            return functions.min(arg, filter=flt)
        case AggFunc.MAX:
            assert arg is not None
            return functions.max(arg, filter=flt)
        case AggFunc.FIRST | AggFunc.LAST:
            assert arg is not None
            fn = functions.first_value if a.func is AggFunc.FIRST else functions.last_value
            # nulls are skipped: first/last is the earliest/latest event that has a value
            cond = arg.is_not_null() if flt is None else flt & arg.is_not_null()
            order: list[Any] | None = None
            if a.order_by is not None:
                order = [expr(a.order_by).sort(ascending=True)]
            return fn(arg, filter=cond, order_by=order)
        case _:
            assert_never(a.func)


def emit(plan: logical.Plan, ctx: SessionContext) -> DataFrame:
    """The DataFrame computing `plan` over the tables registered in `ctx`."""
    match plan:
        case logical.Scan(table=table, columns=cols):
            df = ctx.table(table_name(table))
            return df.select(*[col(name).alias(str(cid)) for name, cid, _ in cols])
        case logical.Filter(input=inp, predicate=p):
            return emit(inp, ctx).filter(expr(p))
        case logical.Project(input=inp, items=items):
            return emit(inp, ctx).select(*[expr(e).alias(str(cid)) for e, cid in items])
        case logical.Join(left=left, right=right, left_keys=lk, right_keys=rk, kind=kind):
            return emit(left, ctx).join(
                emit(right, ctx),
                left_on=[str(c) for c in lk],
                right_on=[str(c) for c in rk],
                how=kind.value,
                coalesce_duplicate_keys=False,
            )
        case logical.Aggregate(input=inp, group=group, aggs=aggs):
            return emit(inp, ctx).aggregate(
                [expr(e).alias(str(cid)) for e, cid in group],
                [aggregate(a).alias(str(cid)) for a, cid in aggs],
            )
        case logical.Sort(input=inp, keys=keys):
            return emit(inp, ctx).sort(
                *[expr(e).sort(ascending=not desc, nulls_first=nf) for e, desc, nf in keys]
            )
        case logical.Limit(input=inp, count=n):
            return emit(inp, ctx).limit(n)
        case logical.Output(input=logical.Project(input=inp, items=items), columns=cols) if {
            cid for _, cid, _ in cols
        } <= {cid for _, cid in items}:
            # one projection, not two: a projection costs DataFusion time quadratic in its
            # width, with the GIL held (480 columns: ~10 ms each)
            by_id = {cid: e for e, cid in items}
            return emit(inp, ctx).select(*[expr(by_id[cid]).alias(name) for cid, name, _ in cols])
        case logical.Output(input=inp, columns=cols):
            return emit(inp, ctx).select(*[col(str(cid)).alias(name) for cid, name, _ in cols])
        case _:
            assert_never(plan)


def session(
    *, target_partitions: int = 2, memory_limit: int | None = None, batch_size: int = 8192
) -> SessionContext:
    """A DataFusion context; tables are registered into it with `register`."""
    config = SessionConfig().with_target_partitions(target_partitions).with_batch_size(batch_size)
    runtime = RuntimeEnvBuilder()
    if memory_limit is not None:
        runtime = runtime.with_fair_spill_pool(memory_limit)
    return SessionContext(config, runtime)


def table_name(ref: TableRef) -> str:
    """The name a table is registered under: an entity's or a stream's own (schema names are
    `[a-z_][a-z0-9_]*`), a version table's by its generation and version (no user text)."""
    match ref:
        case EntityTable(name=name) | StreamTable(name=name):
            return name
        case TagRef(generation=g, version=v):
            return f"__tag__{g}__v{v}"
        case SegmentRef(generation=g, version=v):
            return f"__seg__{g}__v{v}"
    assert_never(ref)


def register(ctx: SessionContext, ref: TableRef, table: pa.Table, partitions: int = 2) -> None:
    name = table_name(ref)
    if ctx.table_exist(name):
        ctx.deregister_table(name)
    batches = table.to_batches()
    if not batches:
        batches = [pa.RecordBatch.from_pylist([], schema=table.schema)]
    parts: list[list[pa.RecordBatch]] = [[] for _ in range(max(1, min(partitions, len(batches))))]
    for i, b in enumerate(batches):
        parts[i % len(parts)].append(b)
    ctx.register_record_batches(name, parts)


class ExecutionFailed(Exception):
    """DataFusion failed a plan while building or running it, for a reason that none of the
    subclasses names (the message carries DataFusion's words)."""


class OutOfMemory(ExecutionFailed):
    """The memory pool (the engine's `memory_limit`) cannot hold what the plan needs."""


class Overflow(ExecutionFailed):
    """Arithmetic that has no answer in its type: an overflow, a division by zero."""


class Cancelled(ExecutionFailed):
    """DataFusion's tasks were cancelled under the query (its runtime stopped them)."""


# DataFusion's Python binding raises plain `Exception`s whose text starts with the error
# variant's display; this is the one place that reads it (each variant's display is fixed in
# datafusion-common's `DataFusionError` and arrow's `ArrowError`).
_MEMORY = ("Resources exhausted", "Not enough memory", "Memory Exhausted")
_OVERFLOW = ("overflow", "Overflow", "Divide by zero", "divide by zero", "Division by zero")
# a checked integer step (see `_checked`) that left int64: the cast back fails with the true value
_OUT_OF_INT64 = re.compile(r"value of (-?[0-9]+) is out of range Int64")
_CANCELLED = ("was cancelled", "Cancelled", "cancelled")


def failure(exc: BaseException) -> ExecutionFailed:
    """What `exc` (raised by DataFusion or Arrow while a plan ran) means, typed."""
    if isinstance(exc, ExecutionFailed):
        return exc
    message = _message(exc)
    text = str(exc)
    if isinstance(exc, MemoryError | pa.ArrowMemoryError) or any(m in text for m in _MEMORY):
        return OutOfMemory(message)
    out_of_range = _OUT_OF_INT64.search(text)
    if out_of_range is not None:
        return Overflow(f"integer overflow: {out_of_range.group(1)} is outside the 64-bit integers")
    if isinstance(exc, OverflowError | ZeroDivisionError) or any(m in text for m in _OVERFLOW):
        return Overflow(message)
    if any(m in text for m in _CANCELLED):
        return Cancelled(message)
    return ExecutionFailed(message)


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for prefix in ("DataFusion error: ", "Execution error: ", "Arrow error: "):
        text = text.replace(prefix, "")
    return text[:300]


Guard = contextlib.AbstractContextManager[Any]
Frame = DataFrame  # what a caller holds: a plan emitted over registered tables, ready to run


def frame(plan: logical.Plan, ctx: SessionContext, guard: Guard | None = None) -> DataFrame:
    """Emit `plan`, holding `guard` (the engine's lock) so that no table is re-registered while
    the plan looks its tables up; the DataFrame keeps the tables it found, and can be run again
    (each run plans it physically anew)."""
    with guard if guard is not None else contextlib.nullcontext():
        try:
            return emit(plan, ctx)
        except (InternalError, AssertionError):  # a bug of ours, not a failure of the query
            raise
        except Exception as exc:  # DataFusion refused the plan (a type it cannot coerce, ...)
            raise failure(exc) from None


def execute(plan: logical.Plan, ctx: SessionContext, guard: Guard | None = None) -> pa.Table:
    return collect(frame(plan, ctx, guard))


def collect(df: DataFrame) -> pa.Table:
    try:
        return df.to_arrow_table()
    except Exception as exc:  # DataFusion raises plain Exceptions
        raise failure(exc) from None


def stream(df: DataFrame) -> Iterator[pa.RecordBatch]:
    """The result batch by batch, each pulled on the calling thread; the work stops when the
    caller stops iterating (closing the generator drops DataFusion's stream)."""
    try:
        batches = df.execute_stream()
        for batch in batches:
            yield batch.to_pyarrow()
    except Exception as exc:
        raise failure(exc) from None


def astream(df: DataFrame) -> AsyncGenerator[pa.RecordBatch, None]:
    """Start executing `df` here (physical planning: call it off the event loop) and give its
    batches as an async generator, to be pulled on an event loop.

    A pull awaits a Rust future on DataFusion's runtime; no Python thread waits for it. Cancelling
    a pending pull drops that future, and closing the generator drops the stream, which aborts
    the tasks it spawned: together they stop the work in the middle of a batch. Cancelling alone
    is not enough (the spawned tasks would go on filling their buffers). Either takes effect at
    DataFusion's next yield point: within milliseconds for most plans, but a phase that takes in
    all its input before it answers (a partial aggregate of DISTINCT values, say) may yield only
    every 128 input batches.
    """
    try:
        batches = df.execute_stream()
    except Exception as exc:
        raise failure(exc) from None
    return _pull(batches)


async def _pull(batches: RecordBatchStream) -> AsyncGenerator[pa.RecordBatch, None]:
    try:
        async for batch in batches:
            yield batch.to_pyarrow()
    except Exception as exc:  # a CancelledError goes through: the caller stopped the query
        raise failure(exc) from None
    finally:
        del batches  # the last reference: dropping it stops DataFusion


def result_schema(df: DataFrame) -> pa.Schema:
    try:
        return pa.schema(df.schema())
    except Exception as exc:
        raise failure(exc) from None


def explain(df: DataFrame) -> str:
    try:
        return (
            str(df.optimized_logical_plan().display_indent())
            + "\n\n"
            + str(df.execution_plan().display_indent())
        )
    except Exception as exc:
        raise failure(exc) from None
