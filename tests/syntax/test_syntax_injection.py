"""EQL-4: hostile text in literals, names and parameters stays data; other languages are refused."""

from __future__ import annotations

import pytest

from eql.diagnostics import EqlError
from eql.syntax import ast, format_statement, parse, strip_spans

NASTY_VALUES = [
    "'; DROP TABLE users; --",
    "' OR 1=1 --",
    "Robert'); DROP TABLE students;--",
    "a''b",
    "`backtick`",
    '"double"',
    "/* not a comment */",
    "-- not a comment",
    "a\x00b",
    "\x00",
    "line1\nline2\r\n",
    "上海",
    "Zoë 😀",
    "\u202eevil",  # right-to-left override
    "e\u0301",  # combining accent, not normalised
    "$city",
    "\\'",
    "WHERE x = 1",
    "",
]


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def bquote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@pytest.mark.parametrize("value", NASTY_VALUES)
def test_string_literal_is_exactly_the_value(value: str) -> None:
    stmt = parse(f"FIND users WHERE name = {quote(value)} RETURN id")
    assert isinstance(stmt, ast.Find) and isinstance(stmt.where, ast.Compare)
    assert stmt.where.right == ast.StringLiteral(value, stmt.where.right.span)
    assert stmt.returns[0].expr == ast.Path((ast.Ident("id", stmt.returns[0].expr.span),),
                                          stmt.returns[0].expr.span)  # fmt: skip
    again = parse(format_statement(stmt))
    assert strip_spans(again) == strip_spans(stmt)


@pytest.mark.parametrize("name", [v for v in NASTY_VALUES if v])
def test_quoted_name_is_exactly_the_name(name: str) -> None:
    stmt = parse(f"FIND {bquote(name)} WHERE {bquote(name)}.x = 1 RETURN 1 AS {bquote(name)}")
    assert isinstance(stmt, ast.Find)
    assert stmt.entity.name == name
    assert isinstance(stmt.where, ast.Compare) and isinstance(stmt.where.left, ast.Path)
    assert [p.name for p in stmt.where.left.parts] == [name, "x"]
    assert stmt.returns[0].alias is not None and stmt.returns[0].alias.name == name
    assert strip_spans(parse(format_statement(stmt))) == strip_spans(stmt)


def test_parameters_are_names_never_text() -> None:
    stmt = parse("FIND users WHERE city = $city AND id IN $ids LIMIT $n")
    assert isinstance(stmt, ast.Find) and isinstance(stmt.where, ast.Logical)
    left, right = stmt.where.operands
    assert isinstance(left, ast.Compare) and left.right == ast.Param("city", left.right.span)
    assert isinstance(right, ast.InParam) and right.param.name == "ids"
    assert isinstance(stmt.limit, ast.Param) and stmt.limit.name == "n"


@pytest.mark.parametrize(
    "text",
    [
        "FIND users WHERE city = $city; DROP TABLE users",
        "FIND users; DELETE FROM users",
        "SELECT * FROM users",
        "DROP TABLE users",
        "DELETE FROM users WHERE 1 = 1",
        "INSERT INTO users VALUES (1)",
        "FIND users WHERE city = $city'",
        "FIND users WHERE city = $ci ty",
        "COPY users TO '/etc/passwd'",
        "FIND users WHERE name = 'x' UNION SELECT password FROM admins",
        "FIND users WHERE name = \\'x\\'",
    ],
)
def test_other_statements_and_splices_are_refused(text: str) -> None:
    with pytest.raises(EqlError) as info:
        parse(text)
    d = info.value.diagnostics[0]
    assert d.code.startswith("E1")
    assert d.span is not None and 0 <= d.span.start <= d.span.end <= len(text)


def test_comment_hides_the_rest_of_the_line_only() -> None:
    stmt = parse("FIND users WHERE name = 'x' -- ' OR 1=1\nRETURN id")
    assert isinstance(stmt, ast.Find) and isinstance(stmt.where, ast.Compare)
    assert isinstance(stmt.where.right, ast.StringLiteral) and stmt.where.right.value == "x"
    assert len(stmt.returns) == 1


def test_keywords_inside_literals_and_names_are_data() -> None:
    stmt = parse("FIND `FIND` WHERE `WHERE` = 'WHERE' RETURN `RETURN` AS `AS`")
    assert isinstance(stmt, ast.Find)
    assert stmt.entity.name == "FIND"
    assert isinstance(stmt.where, ast.Compare) and isinstance(stmt.where.right, ast.StringLiteral)
    assert stmt.where.right.value == "WHERE"
    assert stmt.returns[0].alias is not None and stmt.returns[0].alias.name == "AS"


def test_nul_outside_a_literal_is_refused_with_its_position() -> None:
    text = "FIND users\x00 WHERE x = 1"
    with pytest.raises(EqlError) as info:
        parse(text)
    d = info.value.diagnostics[0]
    assert d.code == "E104" and d.span is not None and d.span.start == text.index("\x00")
    assert "\x00" not in info.value.render()  # control characters never reach a terminal
    assert "\x00" not in d.message


def test_error_messages_escape_control_characters() -> None:
    text = "FIND users WHERE x = 'a\x1b[31mred' 'b'"
    with pytest.raises(EqlError) as info:
        parse(text)
    rendered = info.value.render()
    assert "\x1b" not in rendered
    assert "\x1b" not in info.value.diagnostics[0].message
