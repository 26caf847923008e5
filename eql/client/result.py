"""`Result`: the rows of one EQL text, read as Arrow, pandas, polars or a stream of batches.

    res = db.query("FIND users RETURN id, name LIMIT 5")
    res.schema                  # {"id": "int", "name": "string"}: names and EQL types
    res.to_arrow()              # a pyarrow.Table (read once, then kept)
    res.to_pandas(); res.to_polars()
    for batch in res.to_batches(): ...   # RecordBatches as they come, nothing kept
    res.explain("plan")         # how the text compiles

A result is lazy: nothing runs until it is read (a store connection has compiled the text, so
its errors came already; over HTTP nothing is sent before). `to_arrow()` and the displays read it
whole, once, and keep the table; `to_batches()` runs it again each time unless the table is kept.
A `Source` (the connection's) does the work: `open()` gives a `Run`, an iterator of batches whose
`schema` and `columns` are known once it is open and whose `truncated` is known at its end.

pandas and polars are optional (`pip install 'eql[pandas]'`, `'eql[polars]'`); without them
`to_pandas()` / `to_polars()` raise an ImportError that says so.

May import pyarrow, entities.arrow, pandas and polars (optional), eql.client.{display, errors}.
"""

from __future__ import annotations

import abc
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from entities.arrow import eql_type_name
from eql.client import display
from eql.client.errors import Truncated

if TYPE_CHECKING:
    import pandas
    import polars

__all__ = ["Column", "Explanation", "Result", "Run", "Source", "eql_type"]

_LIBRARY = os.path.dirname(os.path.abspath(__file__))  # eql/client/


def _caller() -> int:
    """The `stacklevel` of the first frame outside the library, for a warning raised in the
    function that calls this: `len(res)`, `list(res)`, `res.to_pandas()`, a loop over
    `to_batches()`, `db.execute(...)` all warn at the caller's line."""
    level = 1
    frame: FrameType | None = sys._getframe(1)  # the function that warns: level 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == (
        _LIBRARY
    ):
        level, frame = level + 1, frame.f_back
    return level


class Column(NamedTuple):
    name: str
    type: str  # the EQL type: int, decimal(12,2), string, enum[...], timestamp, ...


@dataclass(frozen=True, slots=True)
class Explanation:
    """How a text compiles at one stage (ast, bound, plan, datafusion, all); prints as its text."""

    stage: str
    text: str

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<eql.Explanation {self.stage}>\n{self.text}"


class Run(abc.ABC):
    """One execution: batches as they come. `schema` and `columns` once open; `truncated` (more
    rows existed than the limit let through) once exhausted; `close()` stops the work."""

    schema: pa.Schema
    columns: tuple[Column, ...]
    truncated: bool = False
    limited: bool = False  # cut at a limit the caller did not choose (a server's default)

    @abc.abstractmethod
    def __iter__(self) -> Iterator[pa.RecordBatch]: ...

    def close(self) -> None:
        return None


class Source(abc.ABC):
    """What a connection gives a result: the text, a way to run it and to explain it."""

    text: str

    @abc.abstractmethod
    def open(self) -> Run: ...

    @abc.abstractmethod
    def explain(self, stage: str | None) -> Explanation: ...

    def columns(self) -> tuple[Column, ...] | None:
        """The columns without running, when the source knows them (a compiled query)."""
        return None


class Result:
    preview_rows = 10  # rows shown by repr and in Jupyter

    def __init__(self, source: Source) -> None:
        self._source = source
        self._table: pa.Table | None = None
        self._columns: tuple[Column, ...] | None = source.columns()
        self._truncated: bool | None = None

    @classmethod
    def of_table(
        cls, text: str, table: pa.Table, columns: tuple[Column, ...], explain: Any = None
    ) -> Result:
        """A result already read (a statement's answer)."""
        result = cls(_Kept(text, table, columns, explain))
        result._table, result._truncated = table, False
        return result

    @property
    def text(self) -> str:
        return self._source.text

    @property
    def schema(self) -> dict[str, str]:
        """Each column's name and EQL type (over HTTP this opens the result to see them)."""
        return {c.name: c.type for c in self._cols()}

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self._cols()]

    @property
    def truncated(self) -> bool | None:
        """Whether more rows exist than were returned (a `limit`); None before it was read."""
        return self._truncated

    def _cols(self) -> tuple[Column, ...]:
        if self._columns is None:
            run = self._source.open()
            try:
                self._columns = run.columns
            finally:
                run.close()
        return self._columns

    def to_arrow(self) -> pa.Table:
        """Every row as a pyarrow.Table (read once; later calls give the same table)."""
        if self._table is None:
            run = self._source.open()
            try:
                batches = list(run)
            finally:
                run.close()
            self._table = pa.Table.from_batches(batches, schema=run.schema)
            self._ended(run)
        return self._table

    def to_batches(self) -> Iterator[pa.RecordBatch]:
        """The rows as RecordBatches, each as it comes (nothing is kept: it runs again on each
        call, unless `to_arrow()` has kept the table)."""
        if self._table is not None:
            yield from self._table.to_batches()
            return
        run = self._source.open()
        try:
            yield from run
        finally:
            run.close()
        self._ended(run)

    def _ended(self, run: Run) -> None:
        self._columns = run.columns
        self._truncated = run.truncated
        if run.truncated and run.limited:
            warnings.warn(
                f"the server cut this result at its default row limit; pass limit=N to "
                f"query() for more rows (at most its EQL_MAX_ROWS): {self.text[:60]!r}",
                Truncated,
                stacklevel=_caller(),
            )

    def to_pandas(self) -> pandas.DataFrame:
        """A pandas DataFrame (enums as categoricals, timestamps in UTC); needs pandas."""
        try:
            import pandas
        except ImportError as exc:
            raise ImportError(
                "Result.to_pandas() needs pandas: pip install 'eql[pandas]'", name="pandas"
            ) from exc
        frame = _unique_dictionaries(self.to_arrow()).to_pandas()
        assert isinstance(frame, pandas.DataFrame)
        return frame

    def to_polars(self) -> polars.DataFrame:
        """A polars DataFrame; needs polars."""
        try:
            import polars
        except ImportError as exc:
            raise ImportError(
                "Result.to_polars() needs polars: pip install 'eql[polars]'", name="polars"
            ) from exc
        frame = polars.from_arrow(self.to_arrow())
        assert isinstance(frame, polars.DataFrame)
        return frame

    def explain(self, stage: str | None = None) -> Explanation:
        """How the text compiles: `stage` is ast, bound, plan, datafusion or all (default: the
        text's own EXPLAIN stage, else all)."""
        return self._source.explain(stage)

    def __len__(self) -> int:
        return int(self.to_arrow().num_rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The rows as dicts (read whole first)."""
        return iter(self.to_arrow().to_pylist())

    def __repr__(self) -> str:
        table = self.to_arrow()
        types = [c.type for c in self._cols()]
        return display.text(table, types, self.preview_rows, self._truncated, "eql.Result")

    def _repr_html_(self) -> str:
        table = self.to_arrow()
        types = [c.type for c in self._cols()]
        return display.html_table(table, types, self.preview_rows, self._truncated)


class _Kept(Source):
    """A result already read (a statement's answer)."""

    def __init__(self, text: str, table: pa.Table, columns: tuple[Column, ...], explain: Any):
        self.text = text
        self._table = table
        self._columns = columns
        self._explain = explain

    def open(self) -> Run:
        return _TableRun(self._table, self._columns)

    def explain(self, stage: str | None) -> Explanation:
        if self._explain is None:
            raise TypeError("this result is a statement's answer; only queries explain")
        explanation: Explanation = self._explain(stage)
        return explanation

    def columns(self) -> tuple[Column, ...]:
        return self._columns


class _TableRun(Run):
    def __init__(self, table: pa.Table, columns: tuple[Column, ...]) -> None:
        self.schema = table.schema
        self.columns = columns
        self._table = table

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return iter(self._table.to_batches())


def _unique_dictionaries(table: pa.Table) -> pa.Table:
    """`table` with every dictionary (enum) column's values unique, as pandas' categoricals need:
    a column whose dictionary repeats a value (the engine can give one) is encoded again."""
    for i, column in enumerate(table.columns):
        if not pa.types.is_dictionary(column.type):
            continue
        chunks = column.chunks
        if all(len(pc.unique(c.dictionary)) == len(c.dictionary) for c in chunks):
            continue
        plain = pc.cast(column, column.type.value_type)
        table = table.set_column(i, table.field(i), pc.dictionary_encode(plain))
    return table


def cut(batches: Iterator[pa.RecordBatch], limit: int | None, run: Run) -> Iterator[pa.RecordBatch]:
    """`batches` up to `limit` rows; `run.truncated` says whether a row past it existed."""
    if limit is None:
        yield from batches
        return
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        room = limit - rows
        if room <= 0:
            run.truncated = True
            return
        if batch.num_rows > room:
            run.truncated = True
            yield batch.slice(0, room)
            return
        rows += batch.num_rows
        yield batch


def eql_type(field: pa.Field) -> str:
    """The EQL type of a result column read from Arrow: the field's `eql.type` metadata when a
    server sends it, else named from the Arrow type (an enum is then `enum`, its values unknown)."""
    meta = field.metadata or {}
    named = meta.get(b"eql.type")
    if named:
        return bytes(named).decode()
    return eql_type_name(field.type)
