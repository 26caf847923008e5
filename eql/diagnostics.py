"""Diagnostics shared by every compiler stage: spans, error codes, `EqlError`, `InternalError`.

A stage collects `Diagnostic`s (code, message, span, severity, notes, helps) and raises one
`EqlError` carrying them and the query text. `EqlError.render()` gives caret text for the CLI,
`EqlError.to_json()` a list of plain dicts (with 1-based line/column) for the API.
Codes are stable and documented in `docs/errors.md` (E1xx syntax, E2xx semantic).

May import only the standard library.
"""

from __future__ import annotations

import difflib
import enum
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Diagnostic",
    "EqlError",
    "InternalError",
    "Severity",
    "Span",
    "did_you_mean",
    "line_col",
]


def line_col(source: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset; columns count characters, not bytes."""
    offset = max(0, min(offset, len(source)))
    line = source.count("\n", 0, offset) + 1
    col = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, col


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open range `[start, end)` of character offsets into the query text."""

    start: int
    end: int

    def line_col(self, source: str) -> tuple[int, int]:
        """1-based (line, column) of the start."""
        return line_col(source, self.start)

    def end_line_col(self, source: str) -> tuple[int, int]:
        """1-based (line, column) of the end (the position just after the last character)."""
        return line_col(source, self.end)

    def text(self, source: str) -> str:
        return source[self.start : self.end]

    def cover(self, other: Span) -> Span:
        """The smallest span containing both."""
        return Span(min(self.start, other.start), max(self.end, other.end))


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None
    severity: Severity = Severity.ERROR
    notes: tuple[str, ...] = ()
    helps: tuple[str, ...] = ()


class EqlError(Exception):
    """A query the compiler refuses: one or more diagnostics, with the text they point into."""

    def __init__(self, diagnostics: Sequence[Diagnostic], source: str) -> None:
        if not diagnostics:
            raise InternalError("EqlError raised without diagnostics")
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        self.source = source
        first = self.diagnostics[0]
        where = ""
        if first.span is not None:
            line, col = first.span.line_col(source)
            where = f" at {line}:{col}"
        more = len(self.diagnostics) - 1
        suffix = f" (and {more} more)" if more else ""
        super().__init__(f"{first.code}: {first.message}{where}{suffix}")

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(d.code for d in self.diagnostics)

    @property
    def code(self) -> str:
        """The first diagnostic's code (`E201`)."""
        return self.diagnostics[0].code

    @property
    def message(self) -> str:
        return self.diagnostics[0].message

    @property
    def position(self) -> tuple[int, int] | None:
        """1-based (line, column) in the text where the first diagnostic starts, if it has one."""
        span = self.diagnostics[0].span
        return None if span is None else span.line_col(self.source)

    @property
    def hint(self) -> str | None:
        """The first diagnostic's first hint, if any."""
        helps = self.diagnostics[0].helps
        return helps[0] if helps else None

    def render(self) -> str:
        """Caret text, one block per diagnostic, in the style of rustc."""
        return "\n\n".join(_render_one(d, self.source) for d in self.diagnostics)

    def to_json(self) -> list[dict[str, Any]]:
        """Plain dicts for an API response; no stack traces, no paths."""
        out: list[dict[str, Any]] = []
        for d in self.diagnostics:
            item: dict[str, Any] = {
                "code": d.code,
                "message": d.message,
                "severity": d.severity.value,
                "start": None,
                "end": None,
                "line": None,
                "column": None,
                "end_line": None,
                "end_column": None,
                "notes": list(d.notes),
                "helps": list(d.helps),
            }
            if d.span is not None:
                line, col = d.span.line_col(self.source)
                end_line, end_col = d.span.end_line_col(self.source)
                item.update(
                    start=d.span.start,
                    end=d.span.end,
                    line=line,
                    column=col,
                    end_line=end_line,
                    end_column=end_col,
                )
            out.append(item)
        return out


class InternalError(Exception):
    """A bug in the EQL compiler, never the user's fault."""

    def __init__(self, message: str) -> None:
        super().__init__(
            f"internal compiler error (this is a bug in EQL, please report it): {message}"
        )


def did_you_mean(name: str, candidates: Iterable[str], *, limit: int = 1) -> list[str]:
    """Close matches of `name` among `candidates` (case-insensitive), best first."""
    by_lower: dict[str, str] = {}
    for c in candidates:
        by_lower.setdefault(c.lower(), c)
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=limit, cutoff=0.6)
    return [by_lower[m] for m in matches]


# --- rendering ------------------------------------------------------------------------------


def _display(ch: str) -> str:
    """A printable stand-in for one source character (keeps terminals safe from control codes)."""
    if ch == "\t":
        return "    "
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        return "\N{REPLACEMENT CHARACTER}"
    return ch


def _width(ch: str) -> int:
    if ch == "\t":
        return 4
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


_CONTEXT_BEFORE = 60  # characters of a long line shown before the span
_CONTEXT_MAX = 160  # characters of a long line shown in all


def _render_one(d: Diagnostic, source: str) -> str:
    head = f"{d.severity.value}[{d.code}]: {d.message}"
    lines = [head]
    if d.span is not None:
        line_no, col = d.span.line_col(source)
        line_start = source.rfind("\n", 0, d.span.start) + 1
        line_end = source.find("\n", d.span.start)
        if line_end == -1:
            line_end = len(source)
        # long lines: show a window around the span, marked with an ellipsis
        shown_start = max(line_start, d.span.start - _CONTEXT_BEFORE)
        shown_end = min(line_end, shown_start + _CONTEXT_MAX)
        prefix = "…" if shown_start > line_start else ""
        suffix = "…" if shown_end < line_end else ""
        text = source[shown_start:shown_end]
        gutter = " " * len(str(line_no))
        lead = len(prefix) + sum(_width(c) for c in source[shown_start : d.span.start])
        under_end = min(d.span.end, shown_end)
        width = sum(_width(c) for c in source[d.span.start : under_end])
        lines.append(f"{gutter}--> {line_no}:{col}")
        lines.append(f"{gutter} |")
        lines.append(f"{line_no} | {prefix}" + "".join(_display(c) for c in text) + suffix)
        lines.append(f"{gutter} | " + " " * lead + "^" * max(1, width))
    pad = " " * (len(str(d.span.line_col(source)[0])) if d.span is not None else 0)
    lines.extend(f"{pad} = note: {n}" for n in d.notes)
    lines.extend(f"{pad} = help: {h}" for h in d.helps)
    return "\n".join(lines)
