"""Syntax errors: each mistake gives a stable code, the right position, and a useful hint."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from eql.diagnostics import EqlError, Span
from eql.syntax import MAX_QUERY_CHARS, parse


@dataclass(frozen=True)
class Case:
    text: str
    code: str
    line: int
    col: int
    help: str = ""  # a substring of one of the helps
    message: str = ""  # a substring of the message
    width: int | None = None  # span length, when it matters


CASES: dict[str, Case] = {
    "misspelled_keyword": Case(
        "FIND users\nWERE home_store.city = 'Shanghai'", "E101", 2, 1, "did you mean `WHERE`?"
    ),
    "misspelled_statement": Case("FIDN users", "E101", 1, 1, "did you mean `FIND`?"),
    "misspelled_unit": Case(
        "FIND users\nWHERE count(purchase DURING LAST 30 DAYZ) > 1",
        "E101",
        2,
        37,
        "did you mean `DAY",
        "a time unit",
    ),
    "double_quoted_string": Case(
        'FIND users WHERE name = "Bob"', "E104", 1, 25, "strings use single quotes"
    ),
    "unterminated_string": Case(
        "FIND users\nWHERE name = 'Bob\nLIMIT 3", "E103", 2, 14, "close the string"
    ),
    "unexpected_end": Case(
        "FIND users WHERE x = 1 RETURN", "E102", 1, 30, message="expected an expression"
    ),
    "unclosed_paren": Case("FIND users WHERE x = (1 + 2", "E102", 1, 28, message="`)`"),
    "empty_input": Case("  -- nothing here\n", "E102", 2, 1, "a statement starts with FIND"),
    "number_glued_to_unit": Case(
        "FIND users WHERE count(purchase DURING LAST 30DAYS) > 1",
        "E105",
        1,
        45,
        "put a space",
        width=6,
    ),
    "two_dots": Case("FIND users WHERE x = 1.2.3", "E105", 1, 22, width=5),
    "int_out_of_range": Case(
        "FIND users WHERE x = 99999999999999999999", "E105", 1, 22, message="out of range"
    ),
    "double_equals": Case("FIND users WHERE x == 1", "E101", 1, 21, "single `=`"),
    "c_style_and": Case("FIND users WHERE x = 1 && y = 2", "E104", 1, 24, "write AND"),
    "clause_order": Case(
        "FIND users\nRETURN id\nWHERE x = 1", "E101", 3, 1, "clauses go in this order"
    ),
    "events_during_after_where": Case(
        "FIND EVENTS purchase\nWHERE amount > 1\nDURING LAST 7 DAYS",
        "E101",
        3,
        1,
        "DURING window comes right after the stream name",
    ),
    "bare_tag_history": Case(
        "FIND users WHERE value_tier AS OF '2026-10-01' = 'high'",
        "E101",
        1,
        48,
        "(value_tier AS OF '2026-10-01')",
    ),
    "did_filter_needs_parens": Case(
        "FIND users WHERE DID purchase WHERE a = 1 AND b = 2 DURING LAST 3 DAYS",
        "E101",
        1,
        53,
        "put a longer one in parentheses",
    ),
    "invalid_date": Case("FIND users WHERE d > DATE '2026-02-30'", "E111", 1, 22, "YYYY-MM-DD"),
    "invalid_timestamp": Case(
        "FIND users WHERE t > TIMESTAMP 'yesterday'", "E111", 1, 22, "HH:MM:SS"
    ),
    "unterminated_quoted_name": Case(
        "FIND users WHERE `home store = 1", "E108", 1, 18, "close the name"
    ),
    "empty_quoted_name": Case("FIND users WHERE `` = 1", "E108", 1, 18, width=2),
    "unterminated_comment": Case("FIND users /* where are\nwe", "E109", 1, 12, "close the comment"),
    "reserved_word": Case("FIND users WHERE funnel = 1", "E110", 1, 18, "`funnel`"),
    "sql": Case("SELECT * FROM users", "E101", 1, 1, "EQL is not SQL"),
    "two_statements": Case("FIND users; FIND stores", "E101", 1, 13, "one statement per query"),
    "nul_character": Case("FIND users WHERE x = 1\x00", "E104", 1, 23, message="U+0000"),
    "non_ascii_name": Case("FIND users WHERE 城市 = 1", "E104", 1, 18, "backticks"),
    "keyword_as_name": Case("FIND users WHERE in = 1", "E101", 1, 21, "`in` is a keyword"),
    "events_as_entity": Case("FIND events WHERE x = 1", "E101", 1, 19, "FIND `events`"),
    "missing_by": Case("FIND users ORDER spend", "E101", 1, 18, message="`BY`"),
    "empty_in_list": Case("FIND users WHERE x IN ()", "E101", 1, 24, message="an expression"),
    "dollar_alone": Case("FIND users WHERE x = $", "E104", 1, 22, "parameter"),
    "limit_expression": Case("FIND users LIMIT 1 + 1", "E101", 1, 20),
    "decimal_too_long": Case("FIND u WHERE x = 1." + "1" * 40, "E105", 1, 18, message="38"),
    # ---- what people bring from SQL and elsewhere (issue 12) ---------------------------------
    "during_between": Case(
        "FIND users WHERE count(purchase DURING BETWEEN '2026-01-01' AND '2026-02-01') > 0",
        "E101",
        1,
        40,
        "DURING '2026-01-01' TO '2026-02-01'",
        "keyword `BETWEEN`",
        width=7,
    ),
    "during_and_for_to": Case(
        "FIND users WHERE DID purchase DURING '2026-01-01' AND '2026-02-01'",
        "E101",
        1,
        51,
        "'2026-01-01' TO '2026-02-01'",
    ),
    "during_not_a_window": Case(
        "FIND users WHERE DID purchase DURING 30 DAYS",
        "E101",
        1,
        38,
        "DURING LAST 30 DAYS",
    ),
    "trailing_comma_before_limit": Case(
        "FIND users RETURN id, name, LIMIT 5",
        "E101",
        1,
        27,
        "remove the comma",
        "trailing comma before `LIMIT`",
        width=1,
    ),
    "trailing_comma_before_order_by": Case(
        "FIND users RETURN id,\n  name,\nORDER BY name",
        "E101",
        2,
        7,
        "remove the comma",
        "trailing comma before `ORDER`",
        width=1,
    ),
    "trailing_comma_at_end": Case("FIND users RETURN id, name,", "E102", 1, 28, "trailing comma"),
    "having": Case(
        "FIND users GROUP BY city RETURN city, count() AS n HAVING n > 3",
        "E101",
        1,
        52,
        "EQL has no HAVING",
    ),
    "having_after_where": Case(
        "FIND users WHERE is_member HAVING count(purchase) > 3",
        "E101",
        1,
        28,
        "WHERE count(purchase) >= 3",
    ),
    "square_brackets": Case(
        "FIND users WHERE id IN [1, 2]", "E104", 1, 24, "`IN (1, 2)`", "`[`", width=1
    ),
    "square_brackets_not_in": Case(
        "FIND users WHERE city NOT IN ['a', 'b']", "E104", 1, 30, "`IN ('a', 'b')`"
    ),
    "within": Case(
        "FIND users WHERE DID view WITHIN 2 HOURS",
        "E101",
        1,
        27,
        "sequences (`DID a THEN b WITHIN ...`) are not supported yet",
    ),
    "within_window": Case(
        "FIND users WHERE DID view WITHIN 2 HOURS", "E101", 1, 27, "DURING LAST 2 HOURS"
    ),
    "sequence_then": Case(
        "FIND users WHERE DID view THEN purchase WITHIN 1 DAY",
        "E101",
        1,
        27,
        "sequences (`DID a THEN b WITHIN ...`) are not supported yet",
    ),
    "sequence_arrow": Case(
        "FIND users WHERE DID view -> purchase",
        "E101",
        1,
        27,
        "sequences (`DID a THEN b WITHIN ...`) are not supported yet",
    ),
    "limit_negative": Case(
        "FIND users RETURN id LIMIT -1", "E101", 1, 28, "leave LIMIT out for all rows"
    ),
    "limit_all": Case("FIND users LIMIT ALL", "E101", 1, 18, "a whole number from 0"),
}


def test_during_keyword_is_not_offered_backticks() -> None:
    """`DURING` cannot be a name where it stands, so writing it in backticks is no advice."""
    with pytest.raises(EqlError) as info:
        parse("FIND users WHERE count(purchase DURING BETWEEN '2026-01-01' AND '2026-02-01') > 0")
    assert not any("backticks" in h for h in info.value.diagnostics[0].helps)


@pytest.mark.parametrize("name", sorted(CASES))
def test_error_code_and_position(name: str) -> None:
    case = CASES[name]
    with pytest.raises(EqlError) as info:
        parse(case.text)
    err = info.value
    assert len(err.diagnostics) == 1
    d = err.diagnostics[0]
    assert d.code == case.code, (d, err.render())
    assert d.span is not None
    assert 0 <= d.span.start <= d.span.end <= len(case.text)
    assert d.span.line_col(case.text) == (case.line, case.col), err.render()
    if case.width is not None:
        assert d.span.end - d.span.start == case.width
    if case.help:
        assert any(case.help in h for h in d.helps), (d.helps, err.render())
    if case.message:
        assert case.message in d.message, d.message
    item = err.to_json()[0]
    assert (item["code"], item["line"], item["column"]) == (case.code, case.line, case.col)


def test_expected_tokens_are_listed_in_words() -> None:
    with pytest.raises(EqlError) as info:
        parse("FIND users WHERE x = 1 )")
    message = info.value.diagnostics[0].message
    assert message.startswith("unexpected `)`; expected ")
    for words in ("an operator", "`GROUP BY`", "`RETURN`", "`AS OF`", "end of input"):
        assert words in message
    assert "RPAR" not in message and "_" not in message


def test_expected_list_is_exact_not_lalr_approximation() -> None:
    with pytest.raises(EqlError) as info:
        parse("FIND users RETURN id WHERE x = 1")
    message = info.value.diagnostics[0].message
    assert "`ELSE`" not in message and "`THEN`" not in message
    assert "`ORDER BY`" in message


def test_too_long() -> None:
    text = "FIND users WHERE name = '" + "x" * MAX_QUERY_CHARS + "'"
    with pytest.raises(EqlError) as info:
        parse(text)
    d = info.value.diagnostics[0]
    assert d.code == "E106"
    assert d.span is not None and d.span.start == MAX_QUERY_CHARS and d.span.end == len(text)


@pytest.mark.parametrize(
    "text,at",
    [
        ("FIND users WHERE name = '\ud800'", 25),
        ("FIND users RETURN id AS `a\udfff`", 26),
        ("DEFINE SEGMENT s ON users WHERE name = 'x\udc80y'", 41),  # undecodable argv bytes
    ],
)
def test_lone_surrogates(text: str, at: int) -> None:
    with pytest.raises(EqlError) as info:
        parse(text)
    (d,) = info.value.diagnostics
    assert d.code == "E112" and d.span == Span(at, at + 1) and d.helps
    assert "\\ud" not in d.message and f"U+{ord(text[at]):04X}" in d.message
    info.value.render()
    info.value.to_json()


@pytest.mark.parametrize(
    "text",
    [
        "FIND users WHERE " + "(" * 5000 + "x" + ")" * 5000,
        "FIND users WHERE " + "NOT " * 3000 + "x",
        "FIND users WHERE x = " + "- " * 3000 + "1",
        "FIND users WHERE x = " + "1 + " * 3000 + "1",
        "FIND users RETURN " + "f(" * 3000 + "x" + ")" * 3000,
        "FIND users RETURN " + "CASE WHEN a THEN " * 500 + "1" + " END" * 500,
        "FIND users WHERE " + "(" * 40000,
    ],
)
def test_deep_nesting_is_a_clean_error(text: str) -> None:
    with pytest.raises(EqlError) as info:
        parse(text)
    d = info.value.diagnostics[0]
    assert d.code in ("E107", "E102")
    assert d.span is not None and 0 <= d.span.start <= d.span.end <= len(text)
    info.value.render()  # long lines are shortened, not a crash


def test_nesting_below_the_limit_is_fine() -> None:
    parse("FIND users WHERE " + "(" * 90 + "x" + ")" * 90)
    parse("FIND users WHERE x = " + "1 + " * 80 + "1")
    parse("FIND users WHERE x IN (" + ", ".join(["1"] * 5000) + ")")
    parse("FIND users WHERE " + " AND ".join(["a = 1"] * 2000))


def test_non_string_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse(b"FIND users")  # type: ignore[arg-type]
