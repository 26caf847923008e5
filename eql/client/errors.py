"""The one error type of the library: `eql.client.Error`, an `eql.EqlError` with its code, position
and hint, whether it was raised here (local mode) or rebuilt from a server's JSON error body.

    try:
        db.query("FIND users WHERE nme = 'x' RETURN id")
    except eql.EqlError as e:           # every error of a connection is one
        e.code, e.position, e.hint      # "E201", (1, 18), "did you mean `name`?"

Codes are the engine's (`E1xx`, `E2xx`, `E3xx`, docs/errors.md) and the server's lower-case ones
(`unauthorized`, `unknown_segment`, `not_refreshed`, `unknown_version`, ...), which local mode uses
for the same cases. Over HTTP, `status` is the response's status (None in local mode).

May import eql.diagnostics (the standard library otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eql.diagnostics import Diagnostic, EqlError, Severity, Span

__all__ = ["Error", "Truncated", "error", "from_eql", "from_items"]


class Error(EqlError):
    """An error of a connection: diagnostics (code, message, span, notes, helps) and the text they
    point into, as `eql.EqlError`; plus `status` over HTTP."""

    def __init__(
        self, diagnostics: Sequence[Diagnostic], source: str = "", status: int | None = None
    ) -> None:
        super().__init__(diagnostics, source)
        self.status = status


class Truncated(UserWarning):
    """A server cut a result at its default row limit (the caller asked for no limit)."""


def error(
    code: str, message: str, hint: str | None = None, status: int | None = None, source: str = ""
) -> Error:
    """An error without a position (not about a place in EQL text)."""
    return Error([Diagnostic(code, message, None, helps=(hint,) if hint else ())], source, status)


def from_eql(exc: EqlError, hint: str | None = None) -> Error:
    """The runtime's `EqlError` as the library's (the same diagnostics), with `hint` added to the
    first diagnostic's helps when given."""
    if isinstance(exc, Error) and hint is None:
        return exc
    diagnostics = list(exc.diagnostics)
    if hint is not None:
        first = diagnostics[0]
        diagnostics[0] = Diagnostic(
            first.code, first.message, first.span, first.severity, first.notes, (hint,)
        )
    return Error(diagnostics, exc.source)


# Hints for the server's own codes (EQL diagnostics bring their own).
_HINTS = {
    "unauthorized": "pass a valid, unrevoked key: eql.connect(url, key='eql_...') "
    "(`eql keys create` makes one)",
    "forbidden": "this needs a key with another scope (writes: define)",
    "rate_limited": "the key's rate limit was reached; retry later",
    "busy": "every query worker of the server is busy; retry later",
    "deadline_exceeded": "the server stopped the query at its deadline; narrow the query",
    "result_too_large": "ask for fewer rows or columns (limit=, RETURN), or aggregate",
    "limit_too_large": "ask for at most the server's EQL_MAX_ROWS rows",
    "memory_limit": "narrow the query (a LIMIT, a shorter window, fewer groups)",
    "not_refreshed": "REFRESH SEGMENT it first (db.segment(name).refresh())",
}


def from_items(
    items: Sequence[Mapping[str, Any]],
    source: str,
    status: int | None,
    headers: Mapping[str, str] | None = None,
) -> Error:
    """An error body's items (`{"errors": [...]}`, see docs/server.md) as an `Error`: EQL
    diagnostics with their spans into `source` (the text sent), the server's codes with a hint."""
    diagnostics = [_diagnostic(item, headers or {}) for item in items]
    if not diagnostics:
        diagnostics = [Diagnostic("error", f"the server answered {status}", None)]
    return Error(diagnostics, source, status)


def _diagnostic(item: Mapping[str, Any], headers: Mapping[str, str]) -> Diagnostic:
    code = str(item.get("code", "error"))
    start, end = item.get("start"), item.get("end")
    span = Span(start, end) if isinstance(start, int) and isinstance(end, int) else None
    try:
        severity = Severity(item.get("severity", "error"))
    except ValueError:
        severity = Severity.ERROR
    helps = tuple(str(h) for h in item.get("helps") or ())
    if not helps and code in _HINTS:
        hint = _HINTS[code]
        retry = headers.get("retry-after")
        if retry and code in ("rate_limited", "busy"):
            hint += f" (Retry-After: {retry} s)"
        helps = (hint,)
    notes = tuple(str(n) for n in item.get("notes") or ())
    return Diagnostic(code, str(item.get("message", "")), span, severity, notes, helps)
