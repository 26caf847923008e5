"""Emit the logical plan as DataFusion DataFrame/Expr calls: the only module importing datafusion.

Columns are named c<N> after their ColumnId; only the final `Output` aliases them to the names the
user sees. No SQL text is built or executed. Integer `+ - *`, negation and `sum` are emitted so
that they fail (`Overflow`) rather than wrap around as DataFusion's kernels do (see `_checked`,
`_aggregated` and `eql.planner.overflow`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import hashlib
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
from eql.catalog import EntityTable, RollupRef, SegmentRef, StreamTable, TableRef, TagRef
from eql.diagnostics import InternalError
from eql.planner import logical, overflow
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
        case logical.LUnary() | logical.LBinary() if overflow.int_arith(e):
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


# ---- integer arithmetic that does not wrap (how, and why so: `eql.planner.overflow`) ---------
_STEP = pa.decimal128(19, 0)  # an int64 value, exactly; a sum or product of two of them fits


def _step(op: BinOp, a: Expr, b: Expr) -> Expr:
    return a + b if op is BinOp.ADD else a - b if op is BinOp.SUB else a * b


def _checked(tree: logical.LExpr) -> Expr:
    emitted: dict[int, Expr] = {}

    def leaf(x: logical.LExpr) -> Expr:
        if id(x) not in emitted:
            emitted[id(x)] = expr(x)
        return emitted[id(x)]

    def fold(e: logical.LExpr, strict: bool) -> Expr:
        if not overflow.int_arith(e):
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

    leaves = overflow.leaves(tree)
    limit = overflow.safe_limit(tree)
    if limit is None or max(overflow.nesting(x) for x in leaves) >= 2:
        return fold(tree, strict=True)
    outside = [
        (leaf(x) < lit(-limit)) | (leaf(x) > lit(limit))
        for i, x in enumerate(leaves)
        if overflow.known_bound(x) is None and x not in leaves[:i]
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


# ---- integer sums that do not wrap (the reasoning is in `eql.planner.overflow`) ---------------
_SUM29 = Type(Kind.DECIMAL, 29, 0)  # what DataFusion sums decimal(19, 0) values into


def _aggregated(
    df: DataFrame,
    group: tuple[tuple[logical.LExpr, logical.ColumnId], ...],
    aggs: tuple[tuple[logical.LAgg, logical.ColumnId], ...],
) -> DataFrame:
    """`df` aggregated; each integer sum that may leave int64 (`LAgg.overflow`) is checked in a
    projection after the aggregate, with the sums it needs computed beside it. An aggregate
    with no such sum is emitted as it was (no projection, nothing more to compute)."""
    keys = [expr(e).alias(str(cid)) for e, cid in group]
    measures: list[Expr] = []
    checks: dict[str, Expr] = {}
    for a, cid in aggs:
        name = str(cid)
        if a.overflow is None:
            measures.append(aggregate(a).alias(name))
            continue
        assert a.arg is not None
        arg = expr(a.arg)
        flt = expr(a.filter) if a.filter is not None else None
        if a.distinct:
            exact = functions.sum(arg.cast(_STEP), distinct=True, filter=flt)
            measures.append(exact.alias(name))
            checks[name] = _fits(col(name), a.overflow)
            continue
        measures.append(functions.sum(arg, filter=flt).alias(name))
        measures.append(functions.sum(arg.cast(pa.float64()), filter=flt).alias(f"{name}_f"))
        checks[name] = _sum_checked(col(name), col(f"{name}_f"), a.overflow)
    out = df.aggregate(keys, measures)
    if not checks:
        return out
    names = [str(cid) for _, cid in group] + [str(cid) for _, cid in aggs]
    return out.select(*[checks[n].alias(n) if n in checks else col(n) for n in names])


def _sum_checked(wrapped: Expr, approx: Expr, label: str) -> Expr:
    """The int64 sum `wrapped`, or a failure when `approx` (the float sum) shows it wrapped.
    (Each node costs DataFusion planning time at every run: the true value is worked out from
    the two sums when the error is read, not here.)"""
    wrapped_around = functions.abs(approx - wrapped.cast(pa.float64())) > lit(overflow.SUM_GAP)
    return functions.when(wrapped_around, _fail(label, wrapped, approx)).otherwise(wrapped)


def _fits(exact: Expr, label: str) -> Expr:
    """The decimal sum `exact` as int64, or a failure when it is outside int64."""
    outside = (exact < literal(overflow.MIN, _SUM29)) | (exact > literal(overflow.MAX, _SUM29))
    return functions.when(outside, _fail(label, exact, exact)).otherwise(exact.cast(pa.int64()))


def _fail(label: str, wrapped: Expr, approx: Expr) -> Expr:
    """An int64 that fails while running, with `label` and the two sums in DataFusion's error (a
    cast of their text to int64: see `overflow.SUM_MARKER`); evaluated only on the rows that
    fail."""
    text = functions.concat(
        lit(f"{overflow.SUM_MARKER}{label} is "),
        wrapped.cast(pa.string()),
        lit(" ~ "),
        approx.cast(pa.string()),
    )
    return text.cast(pa.int64())


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
            return _aggregated(emit(inp, ctx), group, aggs)
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
    `[a-z_][a-z0-9_]*`), an entity's as of a past time by that time (UTC microseconds), a version
    table's by its generation and version (no user text)."""
    match ref:
        case EntityTable(name=name, at=at):
            return name if at is None else f"__at__{at}__{name}"
        case StreamTable(name=name):
            return name
        case TagRef(generation=g, version=v):
            return f"__tag__{g}__v{v}"
        case SegmentRef(generation=g, version=v):
            return f"__seg__{g}__v{v}"
        case RollupRef():  # by a digest of all it is (stream, key, windows, measures, types)
            return "__rollup__" + hashlib.sha256(repr(ref).encode()).hexdigest()[:24]
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
    """Arithmetic that has no answer in its type: an overflow, a division by zero; `hint` says
    what to do about this one (None: nothing more than the code's general hint)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class Cancelled(ExecutionFailed):
    """DataFusion's tasks were cancelled under the query (its runtime stopped them)."""


# DataFusion's Python binding raises plain `Exception`s whose text starts with the error
# variant's display; this is the one place that reads it (each variant's display is fixed in
# datafusion-common's `DataFusionError` and arrow's `ArrowError`).
_MEMORY = ("Resources exhausted", "Not enough memory", "Memory Exhausted")
_OVERFLOW = ("overflow", "Overflow", "Divide by zero", "divide by zero", "Division by zero")
# a checked integer step (see `_checked`) that left int64: the cast back fails with the true value
_OUT_OF_INT64 = re.compile(r"value of (-?[0-9]+) is out of range Int64")
# a checked sum that left int64 (see `_fail`): the cast of its text fails with the text
_SUM_FAILED = re.compile(
    f"Cannot cast string '{re.escape(overflow.SUM_MARKER)}"
    r"(.*) is (-?[0-9]+) ~ ([-+.e0-9a-zA-Z]+)' to value of Int64",
    re.DOTALL,
)
_CANCELLED = ("was cancelled", "Cancelled", "cancelled")


def failure(exc: BaseException) -> ExecutionFailed:
    """What `exc` (raised by DataFusion or Arrow while a plan ran) means, typed."""
    if isinstance(exc, ExecutionFailed):
        return exc
    message = _message(exc)
    text = str(exc)
    if isinstance(exc, MemoryError | pa.ArrowMemoryError) or any(m in text for m in _MEMORY):
        return OutOfMemory(message)
    summed = _SUM_FAILED.search(text)
    if summed is not None:
        label, wrapped, approx = summed.groups()
        message = overflow.sum_message(label, int(wrapped), float(approx))
        return Overflow(message, overflow.SUM_HINT)
    out_of_range = _OUT_OF_INT64.search(text)
    if out_of_range is not None:
        value = out_of_range.group(1)
        return Overflow(
            f"integer overflow: {value} is outside the 64-bit integers", overflow.INT_HINT
        )
    if isinstance(exc, OverflowError | ZeroDivisionError) or any(m in text for m in _OVERFLOW):
        # int64 overflows are cast errors or name Int64 (abs); the others are decimals'
        hint = (
            overflow.INT_HINT
            if "Int64" in text
            else overflow.DECIMAL_HINT
            if "verflow" in text
            else None
        )
        return Overflow(message, hint)
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
