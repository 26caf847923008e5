"""eql.diagnostics: spans, line/column, caret rendering, JSON, did-you-mean, internal errors."""

from __future__ import annotations

import pytest

from eql.diagnostics import (
    Diagnostic,
    EqlError,
    InternalError,
    Severity,
    Span,
    did_you_mean,
    line_col,
)


def test_line_col_is_one_based_in_characters() -> None:
    text = "ab\ncdé\nf"
    assert line_col(text, 0) == (1, 1)
    assert line_col(text, 2) == (1, 3)
    assert line_col(text, 3) == (2, 1)
    assert line_col(text, 6) == (2, 4)
    assert line_col(text, 7) == (3, 1)
    assert line_col(text, len(text)) == (3, 2)
    assert Span(3, 5).line_col(text) == (2, 1)
    assert Span(3, 5).end_line_col(text) == (2, 3)
    assert Span(3, 5).text(text) == "cd"
    assert Span(1, 2).cover(Span(4, 6)) == Span(1, 6)


def test_render_points_at_the_span_with_helps() -> None:
    text = "FIND users\nWERE x = 1"
    d = Diagnostic("E101", "unexpected name `WERE`", Span(11, 15), helps=("did you mean `WHERE`?",))
    rendered = EqlError([d], text).render()
    assert rendered == (
        "error[E101]: unexpected name `WERE`\n"
        " --> 2:1\n"
        "  |\n"
        "2 | WERE x = 1\n"
        "  | ^^^^\n"
        "  = help: did you mean `WHERE`?"
    )


def test_render_of_several_diagnostics_notes_and_no_span() -> None:
    text = "x"
    err = EqlError(
        [
            Diagnostic("E201", "first", Span(0, 1), Severity.ERROR, notes=("a note",)),
            Diagnostic("E202", "second", None, Severity.WARNING),
        ],
        text,
    )
    rendered = err.render()
    assert "error[E201]: first" in rendered and "= note: a note" in rendered
    assert "warning[E202]: second" in rendered
    assert str(err) == "E201: first at 1:1 (and 1 more)"
    assert err.codes == ("E201", "E202")


def test_render_shortens_long_lines_and_hides_control_characters() -> None:
    text = "x" * 500 + "\x00\x1b" + "y" * 500
    rendered = EqlError([Diagnostic("E104", "bad", Span(500, 501))], text).render()
    source_line = rendered.splitlines()[3]
    assert len(source_line) < 200 and "…" in source_line
    assert "\x00" not in rendered and "\x1b" not in rendered
    caret_line = rendered.splitlines()[4]
    assert caret_line.index("^") == source_line.index("\N{REPLACEMENT CHARACTER}")


def test_render_counts_wide_characters() -> None:
    text = "名字 = 1"
    rendered = EqlError([Diagnostic("E104", "bad", Span(3, 4))], text).render()
    lines = rendered.splitlines()
    assert lines[4] == "  |      ^"  # two wide characters and a space before `=`


def test_to_json() -> None:
    text = "FIND users\nWERE x"
    d = Diagnostic("E101", "msg", Span(11, 15), helps=("h",), notes=("n",))
    assert EqlError([d], text).to_json() == [
        {
            "code": "E101",
            "message": "msg",
            "severity": "error",
            "start": 11,
            "end": 15,
            "line": 2,
            "column": 1,
            "end_line": 2,
            "end_column": 5,
            "notes": ["n"],
            "helps": ["h"],
        }
    ]
    no_span = EqlError([Diagnostic("E106", "too long", None)], text).to_json()[0]
    assert no_span["line"] is None and no_span["start"] is None


def test_did_you_mean() -> None:
    assert did_you_mean("purchse", ["visit", "purchase", "view"]) == ["purchase"]
    assert did_you_mean("WERE", ["WHERE", "GROUP"]) == ["WHERE"]
    assert did_you_mean("zzz", ["WHERE"]) == []
    assert did_you_mean("prchase", ["purchases", "purchase"], limit=2) == ["purchase", "purchases"]


def test_errors_need_diagnostics_and_internal_errors_say_so() -> None:
    with pytest.raises(InternalError):
        EqlError([], "x")
    assert "bug in EQL" in str(InternalError("oops"))
    assert not issubclass(InternalError, EqlError)


def test_dataclasses_are_frozen() -> None:
    d = Diagnostic("E101", "m", Span(0, 1))
    with pytest.raises(AttributeError):
        d.code = "E102"  # type: ignore[misc]
