"""The built-in `rfm(stream, amount_field [WHERE ...] [DURING ...])` tag.

Per entity with at least one event in the window: recency (days since its last event), frequency
(events) and monetary value (sum of the amount field). Each is scored 1-5 by quintile among those
entities: score = 1 + floor(5 * (entities strictly worse) / entities scored), so ties share a
score and the best fifth gets 5 (for recency, fewer days is better). The class is the first
matching rule of `CLASSES` (docs/tags.md); entities without events in the window are `inactive`
and have no scores.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from entities.arrow import ID_COLUMN
from eql.syntax import ast
from runtime.audiences.compute import fail

EXTRAS = ("r", "f", "m")
INACTIVE = "inactive"
# first match wins; r, f, m are the 1-5 scores
CLASSES: tuple[tuple[str, str], ...] = (
    ("champions", "r >= 4 and f >= 4 and m >= 4"),
    ("loyal", "r >= 3 and f >= 4"),
    ("new", "r >= 4 and f = 1"),
    ("potential", "r >= 4"),
    ("need attention", "r = 3"),
    ("at risk", "r <= 2 and (f >= 4 or m >= 4)"),
    ("hibernating", "r = 2"),
    ("lost", "r = 1"),
)


def is_rfm(e: ast.Expr) -> bool:
    return isinstance(e, ast.Call) and e.name.name.lower() == "rfm"


def items(text: str, call: ast.Expr) -> list[tuple[str, ast.Expr]]:
    """The three per-entity measures as EQL expressions over the stream."""
    assert isinstance(call, ast.Call)
    ok = (
        len(call.args) == 2
        and all(isinstance(a, ast.Path) and len(a.parts) == 1 for a in call.args)
        and not call.star
        and not call.distinct
    )
    if not ok:
        raise fail(
            text,
            "E231",
            "rfm takes a stream and its amount field: rfm(stream, amount_field [DURING ...])",
            call.span,
            "e.g. rfm(purchase, amount, DURING LAST 365 DAYS)",
        )
    stream, amount = call.args
    assert isinstance(stream, ast.Path) and isinstance(amount, ast.Path)
    s = stream.parts[0]
    sp = call.span

    def agg(name: str, arg: ast.Expr) -> ast.Call:
        return ast.Call(ast.Ident(name, sp), (arg,), False, False, call.filter, call.window, sp)

    last_time = agg("last", ast.Path((s, ast.Ident("time", sp)), sp))
    recency = ast.Call(ast.Ident("days_since", sp), (last_time,), False, False, None, None, sp)
    return [
        ("recency", recency),
        ("frequency", agg("count", stream)),
        ("monetary", agg("sum", ast.Path((s, amount.parts[0]), sp))),
    ]


def quintile(values: pa.ChunkedArray | pa.Array, higher_is_better: bool) -> np.ndarray:
    """1-5 by the share of values strictly worse (ties share the lower score)."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = "ascending" if higher_is_better else "descending"
    worse = pc.rank(values, sort_keys=order, tiebreaker="min").to_numpy().astype(np.int64) - 1
    return np.asarray(1 + (5 * worse) // n, dtype=np.int64)


def classify(r: np.ndarray, f: np.ndarray, m: np.ndarray) -> np.ndarray:
    out = np.full(len(r), "", dtype=object)
    rules = [
        (r >= 4) & (f >= 4) & (m >= 4),
        (r >= 3) & (f >= 4),
        (r >= 4) & (f == 1),
        r >= 4,
        r == 3,
        (r <= 2) & ((f >= 4) | (m >= 4)),
        r == 2,
        r == 1,
    ]
    done = np.zeros(len(r), dtype=bool)
    for (name, _), rule in zip(CLASSES, rules, strict=True):
        hit = rule & ~done
        out[hit] = name
        done |= hit
    return out


def score(table: pa.Table) -> pa.Table:
    """(__id, recency, frequency, monetary) -> (__id, value, r, f, m)."""
    freq = table.column("frequency").to_numpy(zero_copy_only=False).astype(np.int64)
    active = np.flatnonzero(freq > 0)
    n = table.num_rows
    act = table.take(pa.array(active, type=pa.int64()))
    r = quintile(act.column("recency"), higher_is_better=False)
    f = quintile(act.column("frequency"), higher_is_better=True)
    m = quintile(act.column("monetary"), higher_is_better=True)
    value = np.full(n, INACTIVE, dtype=object)
    value[active] = classify(r, f, m)
    cols = {ID_COLUMN: table.column(ID_COLUMN), "value": pa.array(value, type=pa.string())}
    for name, s in zip(EXTRAS, (r, f, m), strict=True):
        full = np.zeros(n, dtype=np.int64)
        full[active] = s
        mask = np.ones(n, dtype=bool)
        mask[active] = False
        cols[name] = pa.array(full, type=pa.int64(), mask=mask)
    return pa.table(cols)
