"""How a result shows itself: a plain-text table for `repr` and an HTML table for Jupyter, both of
its first rows, with its row count and each column's EQL type. Every value is shown as text (null,
timestamps in UTC with `Z`, control characters escaped, long values cut) and, in HTML, escaped.

May import pyarrow (the standard library otherwise).
"""

from __future__ import annotations

import datetime as dt
import html
import unicodedata
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

WIDTH = 40  # characters of one value at most


def cell(value: Any) -> str:
    """One value as text, on one line."""
    if value is None:
        return "null"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            return str(value.replace(tzinfo=None).isoformat()) + "Z"
        return str(value.isoformat())
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(cell(v) for v in value) + "]"
    text = value if isinstance(value, str) else str(value)
    text = "".join(_visible(c) for c in text)
    return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"


def _visible(c: str) -> str:
    if c == "\n":
        return "\\n"
    if c == "\t":
        return "\\t"
    if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
        return f"\\u{ord(c):04x}"
    return c


def _rows(table: pa.Table, n: int) -> list[list[str]]:
    head = table.slice(0, n)
    columns = [head.column(i).to_pylist() for i in range(head.num_columns)]
    return [[cell(col[r]) for col in columns] for r in range(head.num_rows)]


def _count(rows: int, truncated: bool | None) -> str:
    noun = "row" if rows == 1 else "rows"
    more = " (more exist: cut at the limit)" if truncated else ""
    return f"{rows:,} {noun}{more}"


def text(table: pa.Table, types: Sequence[str], n: int, truncated: bool | None, title: str) -> str:
    """`<title N rows × M columns>`, then the names, types and first `n` rows, aligned."""
    names = [cell(name) for name in table.column_names]
    kinds = [cell(t) for t in types]
    body = _rows(table, n)
    widths = [
        max([len(names[i]), len(kinds[i]), *(len(r[i]) for r in body)]) for i in range(len(names))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    cols = "column" if table.num_columns == 1 else "columns"
    lines = [f"<{title} {_count(table.num_rows, truncated)} × {table.num_columns} {cols}>"]
    if names:
        lines += [line(names), line(kinds), line(["-" * w for w in widths])]
        lines += [line(r) for r in body]
    if table.num_rows > len(body):
        lines.append(f"({len(body)} of {table.num_rows:,} rows shown)")
    return "\n".join(lines)


def html_table(table: pa.Table, types: Sequence[str], n: int, truncated: bool | None) -> str:
    """An HTML table of the first `n` rows (every name, type and value escaped) and the count."""
    esc = html.escape
    head = "".join(
        f"<th>{esc(cell(name))}<br><small>{esc(cell(t))}</small></th>"
        for name, t in zip(table.column_names, types, strict=True)
    )
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in _rows(table, n)
    )
    shown = min(n, table.num_rows)
    note = f", first {shown} shown" if table.num_rows > shown else ""
    cols = "column" if table.num_columns == 1 else "columns"
    count = f"{_count(table.num_rows, truncated)} × {table.num_columns} {cols}{note}"
    return (
        '<div class="eql-result"><table>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"<p>{esc(count)}</p></div>"
    )
