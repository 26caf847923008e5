"""Shared helpers for the EQL tests: building stores, reading results, the SQL oracles.

Everything here is test code: it reads the store's Arrow tables directly (never through EQL) so
that the oracles are independent of the compiler under test.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from storage import Store

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CORPUS_DIR = HERE / "corpus"
SNAPSHOT_DIR = HERE / "snapshots"
RETAIL_SCHEMA = next(
    p
    for p in (ROOT / "entities" / "examples" / "retail.yaml", ROOT / "examples/retail/schema.yaml")
    if p.exists()
)

UTC = dt.UTC
#: The reference time of every retail test: the demo's events end just before it.
NOW = dt.datetime(2026, 11, 1, tzinfo=UTC)
DEMO_USERS = 300
DEMO_SEED = 7
#: How null is written in result snapshots (CSV has no null of its own).
NULL_TEXT = r"\N"


def build_demo_store(root: Path, users: int = DEMO_USERS, seed: int = DEMO_SEED) -> Store:
    """A deterministic demo retail store under `root` (files generated, imported, deleted)."""
    from ingest.demo import generate_demo_files
    from ingest.files import import_file

    store = Store.create(root / "store", RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml")
    files = generate_demo_files(root / "files", users=users, seed=seed, end=dt.date(2026, 11, 1))
    for f in files:
        import_file(store, f.kind, f.target, f.path, rejects_dir=root / "rejects")
    return store


# ---- Arrow tables for the oracles --------------------------------------------------------------
def plain_table(table: pa.Table) -> pa.Table:
    """The table with dictionary (enum) columns decoded to strings and without `__id`."""
    cols = []
    names = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name == "__id":
            continue
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        cols.append(column)
        names.append(name)
    return pa.Table.from_arrays(cols, names=names).combine_chunks()


def store_tables(store: Store) -> dict[str, pa.Table]:
    out: dict[str, pa.Table] = {}
    for ent in store.schema.entities:
        out[ent.name] = plain_table(store.entity_table(ent.name))
    for st in store.schema.streams:
        out[st.name] = plain_table(store.event_table(st.name))
    return out


def duckdb_connection(tables: Mapping[str, pa.Table]) -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name, table in tables.items():
        con.register(name, table)
    return con


def duck_rows(con: Any, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of a DuckDB query, read through Arrow (timestamps stay tz-aware UTC)."""
    rel = con.sql(sql, params=list(params)) if params else con.sql(sql)
    return table_rows(rel.to_arrow_table())


def datafusion_rows(tables: Mapping[str, pa.Table], sql: str) -> list[tuple[Any, ...]]:
    import datafusion

    ctx = datafusion.SessionContext()
    for name, table in tables.items():
        batches = table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
        ctx.register_record_batches(name, [batches])
    return table_rows(ctx.sql(sql).to_arrow_table())


def table_rows(table: pa.Table) -> list[tuple[Any, ...]]:
    cols = [plain_column(c).to_pylist() for c in table.columns]
    return list(zip(*cols, strict=True)) if cols else []


def plain_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(column.type):
        return pc.cast(column, column.type.value_type)
    return column


# ---- comparing results -------------------------------------------------------------------------
_FLOAT_DIGITS = 6


def norm_value(v: Any) -> Any:
    """One comparable form per value: numbers as floats (rounded), times in UTC."""
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float | decimal.Decimal):
        f = float(v)
        if math.isnan(f):
            return "NaN"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return round(f, _FLOAT_DIGITS)
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            raise AssertionError(f"naive timestamp {v!r}: timestamps must be tz-aware")
        return v.astimezone(UTC).replace(tzinfo=UTC)
    return v


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    out: list[Any] = []
    for v in row:
        if v is None:
            out.append((0, ""))
        elif isinstance(v, str):
            out.append((2, v))
        else:
            out.append((1, v))
    return tuple(out)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-5)
    return a == b


def assert_same_rows(
    actual: Iterable[Sequence[Any]],
    expected: Iterable[Sequence[Any]],
    *,
    ordered: bool = False,
    context: str = "",
) -> None:
    """Compare two results as multisets (or lists) of rows, numbers with a small tolerance."""
    a = [tuple(norm_value(v) for v in r) for r in actual]
    e = [tuple(norm_value(v) for v in r) for r in expected]
    if not ordered:
        a.sort(key=_sort_key)
        e.sort(key=_sort_key)
    problems = []
    if len(a) != len(e):
        problems.append(f"{len(a)} rows from EQL, {len(e)} from the oracle")
    for i, (ra, re_) in enumerate(zip(a, e, strict=False)):
        if len(ra) != len(re_) or not all(_close(x, y) for x, y in zip(ra, re_, strict=True)):
            problems.append(f"row {i}: EQL {ra!r} != oracle {re_!r}")
        if len(problems) > 8:
            break
    if problems:
        only_a = [r for r in a if r not in e][:5]
        only_e = [r for r in e if r not in a][:5]
        raise AssertionError(
            (context + "\n" if context else "")
            + "\n".join(problems)
            + f"\nonly in EQL (first 5): {only_a}\nonly in oracle (first 5): {only_e}"
        )


# ---- snapshots ---------------------------------------------------------------------------------
def format_value(v: Any) -> str:
    if v is None:
        return NULL_TEXT
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return format(v, ".12g")
    if isinstance(v, dt.datetime):
        return v.astimezone(UTC).isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _row_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    out: list[Any] = []
    for v in row:
        if v is None:
            out.append((0, 0))
        elif isinstance(v, float) and math.isnan(v):
            out.append((2, 0))
        elif isinstance(v, str):
            out.append((3, v))
        else:
            out.append((1, v))
    return tuple(out)


def result_csv(table: pa.Table, *, keep_order: bool) -> str:
    """The result as CSV: a header of names, one line per row; rows sorted unless ordered."""
    rows = table_rows(table)
    if not keep_order:
        rows.sort(key=_row_key)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(table.column_names)
    for r in rows:
        w.writerow([format_value(v) for v in r])
    return buf.getvalue()
