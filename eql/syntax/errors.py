"""Lark's lexer and parser errors as EQL diagnostics (E101-E105, E108, E109), with hints.

`diagnostic_from_lark` is the entry point; `show` quotes query text safely. The terminal names
of eql.lark are mapped to readable words here ("an expression", "`GROUP BY`", "end of input").

May import lark, eql.diagnostics and eql.syntax.keywords.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from eql.diagnostics import Diagnostic, Span, did_you_mean
from eql.syntax.keywords import HARD_KEYWORDS

__all__ = ["PARENS", "diagnostic_from_lark", "show"]

_PUNCT = {
    "_SEMI": ";",
    "_COMMA": ",",
    "_DOT": ".",
    "LPAR": "(",
    "RPAR": ")",
    "EQ": "=",
    "NE": "!=",
    "LT": "<",
    "LE": "<=",
    "GT": ">",
    "GE": ">=",
    "PLUS": "+",
    "MINUS": "-",
    "STAR": "*",
    "SLASH": "/",
    "PERCENT": "%",
}
_CATEGORY = {
    "NAME": "a name",
    "INT": "an integer",
    "DECIMAL": "a number",
    "STRING": "a string",
    "PARAM": "a parameter",
    "DATE_LIT": "a DATE literal",
    "TIMESTAMP_LIT": "a TIMESTAMP literal",
    "$END": "end of input",
}
_KEYWORD_TEXT = {"AS_OF": "AS OF", "_GROUP": "GROUP BY", "_ORDER": "ORDER BY"}
_IGNORED = {"WS", "LINE_COMMENT", "BLOCK_COMMENT"}

_EXPR_START = {
    "NAME",
    "INT",
    "DECIMAL",
    "STRING",
    "PARAM",
    "DATE_LIT",
    "TIMESTAMP_LIT",
    "LPAR",
    "MINUS",
    "NOT",
    "DID",
    "CASE",
    "IN",
    "TRUE",
    "FALSE",
    "NULL",
}
_OPERATORS = {
    "PLUS",
    "MINUS",
    "STAR",
    "SLASH",
    "PERCENT",
    "EQ",
    "NE",
    "LT",
    "LE",
    "GT",
    "GE",
    "_IS",
    "NOT",
    "IN",
    "_BETWEEN",
    "_LIKE",
}
_UNITS = {"HOUR", "HOURS", "DAY", "DAYS", "WEEK", "WEEKS", "MONTH", "MONTHS", "YEAR", "YEARS"}
# Keywords listed in this order (clauses in statement order), then the others alphabetically.
_RANK = [
    "_AND",
    "_OR",
    "_WHERE",
    "_DURING",
    "_GROUP",
    "_RETURN",
    "_AS",
    "ASC",
    "DESC",
    "_NULLS",
    "_ORDER",
    "_LIMIT",
    "AS_OF",
]
_CLAUSES = {"_WHERE", "_DURING", "_GROUP", "_RETURN", "_ORDER", "_LIMIT", "AS_OF"}
_CLAUSE_ORDER = (
    "clauses go in this order: FIND <entity> WHERE .. GROUP BY .. RETURN .. ORDER BY .. LIMIT .."
    " AS OF ..; FIND EVENTS <stream> may have DURING <window> right after the stream name"
)
_SQL_WORDS = {"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "WITH", "MERGE", "GRANT"}
_NUMBERISH = re.compile(r"[0-9A-Za-z_.]")
_VALID_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_AS_OF_BEFORE = re.compile(r"(?is)\bAS\s+OF\s+(?:'(?:[^']|'')*'|\$\w+|\w+\s*'(?:[^']|'')*')\s*$")
_WORD_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*$")
# `DID path WHERE <one predicate>` with no parenthesis since: the error is inside DID's filter
_DID_FILTER_BEFORE = re.compile(r"(?is)\bDID\s+[\w.`]+\s+WHERE\s+[^()]*$")
# tokens that may follow a name but not a keyword such as IN or NOT: `in = 1`, `not.x`
_AFTER_A_NAME = {"EQ", "NE", "LT", "LE", "GT", "GE", "_DOT", "_IS", "_LIKE", "_BETWEEN", "PLUS"}
# a time point as written in a window: a string, a parameter, a DATE or TIMESTAMP literal
_TIMEPOINT = r"(?:'(?:[^']|'')*'|\$\w+|(?:DATE|TIMESTAMP)\s*'(?:[^']|'')*')"
_BETWEEN_AFTER = re.compile(rf"(?is)\s*({_TIMEPOINT})\s+AND\s+({_TIMEPOINT})")
_TIMEPOINT_BEFORE = re.compile(rf"(?is)({_TIMEPOINT})\s*$")
_TIMEPOINT_AFTER = re.compile(rf"(?is)\s*({_TIMEPOINT})")
_UNIT_AFTER = re.compile(r"(?is)\s*(HOURS?|DAYS?|WEEKS?|MONTHS?|YEARS?)\b")
_COUNT_UNIT_AFTER = re.compile(r"(?is)\s*([0-9]+|\$\w+)\s+(HOURS?|DAYS?|WEEKS?|MONTHS?|YEARS?)\b")
# `, LIMIT` at the end of the text before the offending token: the clause word was read as a name
_TRAILING_COMMA = re.compile(r"(?is),\s*(LIMIT|ORDER|GROUP|RETURN|WHERE|AS)\s*$")
# a parenthesis, or what a count of them skips (strings, quoted names, comments); the parser's
# depth pre-check uses it too
PARENS = re.compile(r"'(?:[^']|'')*'?|`(?:[^`]|``)*`?|--[^\n]*|/\*[\s\S]*?(?:\*/|$)|[()]")
_DID_PATH_BEFORE = re.compile(r"(?is)\bDID\s+[\w.`]+\s*$")
_SEQUENCES = "sequences (`DID a THEN b WITHIN ...`) are not supported yet"
_WINDOW_FORMS = (
    "a window is `DURING LAST 30 DAYS` (or HOURS, WEEKS, MONTHS, YEARS) or"
    " `DURING '2026-01-01' TO '2026-02-01'` (from the start, up to but not including the end)"
)


def show(text: str, limit: int = 40) -> str:
    """Text of the query safe to quote in a message: shortened, control characters escaped."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    out = []
    for ch in short:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def _keyword_text(name: str) -> str:
    return _KEYWORD_TEXT.get(name, name.lstrip("_"))


def _is_keyword(name: str) -> bool:
    return name not in _PUNCT and name not in _CATEGORY and name not in _IGNORED


def describe_expected(expected: Iterable[str]) -> str:
    names = {n for n in expected if n not in _IGNORED}
    parts: list[str] = []
    if {"NAME", "INT", "LPAR", "CASE"} <= names:
        parts.append("an expression")
        names -= _EXPR_START
    if {"PLUS", "STAR"} <= names:
        parts.append("an operator")
        names -= _OPERATORS
    if {"DAY", "DAYS"} <= names:
        parts.append("a time unit (`HOURS`, `DAYS`, `WEEKS`, `MONTHS` or `YEARS`)")
        names -= _UNITS
    end = names & {"_SEMI", "$END"}
    names -= end
    for cat in ("NAME", "INT", "DECIMAL", "STRING", "PARAM", "DATE_LIT", "TIMESTAMP_LIT"):
        if cat in names:
            parts.append(_CATEGORY[cat])
            names.discard(cat)
    keywords = sorted(
        (n for n in names if n not in _PUNCT),
        key=lambda n: (_RANK.index(n) if n in _RANK else len(_RANK), _keyword_text(n)),
    )
    parts.extend(f"`{_keyword_text(n)}`" for n in keywords)
    parts.extend(f"`{_PUNCT[n]}`" for n in sorted(names & _PUNCT.keys(), key=list(_PUNCT).index))
    if "_SEMI" in end:
        parts.append("`;`")
    if "$END" in end:
        parts.append("end of input")
    if len(parts) > 12:
        parts = [*parts[:11], "…"]
    if not parts:
        return "nothing more"
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def _describe_token(type_: str, value: str) -> str:
    if type_ == "$END":
        return "end of input"
    if type_ == "NAME":
        return f"name `{show(value)}`"
    if type_ in ("INT", "DECIMAL"):
        return f"number `{show(value)}`"
    if type_ == "STRING":
        return f"string {show(value)}"
    if type_ == "PARAM":
        return f"parameter `{show(value)}`"
    if type_ in ("DATE_LIT", "TIMESTAMP_LIT"):
        return f"literal `{show(value)}`"
    if type_ in _PUNCT:
        return f"`{value}`"
    if type_ == "AS_OF":
        return "`AS OF`"
    return f"keyword `{show(value).upper()}`"


def _number_run(text: str, pos: int) -> Span | None:
    """The span of a malformed number around `pos` (`30days`, `1.2.3`, `1e5`), if any."""
    start = pos
    while start > 0 and _NUMBERISH.match(text, start - 1):
        start -= 1
    end = pos
    while end < len(text) and _NUMBERISH.match(text, end):
        end += 1
    if start < end and text[start].isdigit() and not _VALID_NUMBER.fullmatch(text, start, end):
        # a path like `a.b` never starts with a digit; `x.1` starts with `x`
        return Span(start, end)
    return None


def _char_diagnostic(text: str, pos: int) -> Diagnostic:
    ch = text[pos]
    rest = text[pos:]
    if ch == "'":
        return Diagnostic(
            "E103",
            "unterminated string literal",
            Span(pos, len(text)),
            helps=("close the string with `'`; write a quote inside a string as `''`",),
        )
    if ch == "`":
        if rest.startswith("``"):
            return Diagnostic(
                "E108",
                "empty quoted name",
                Span(pos, pos + 2),
                helps=("a name in backticks needs at least one character",),
            )
        return Diagnostic(
            "E108",
            "unterminated quoted name",
            Span(pos, len(text)),
            helps=("close the name with a backtick; write a backtick inside it as ``",),
        )
    if rest.startswith("/*"):
        return _unterminated_comment(text, pos)
    number = _number_run(text, pos)
    if number is not None:
        return _bad_number(text, number)
    helps: list[str] = []
    if ch == '"':
        helps.append(
            "strings use single quotes: 'Shanghai'; names with special characters use"
            " backticks: `my name`"
        )
    elif rest.startswith("&&") or ch == "&":
        helps.append("write AND to combine conditions")
    elif rest.startswith("||") or ch == "|":
        helps.append("write OR to combine conditions")
    elif ch == "!":
        helps.append("write NOT to negate, or != for 'not equal'")
    elif ch == "$":
        helps.append("a parameter is `$` followed by a name, e.g. $city")
    elif ch in "[]":
        helps.append(_bracket_help(text, pos))
    elif ch.isalpha() or unicodedata.category(ch).startswith("L"):
        helps.append("names with characters other than A-Z, 0-9 and _ go in backticks: `名字`")
    cp = f"U+{ord(ch):04X}"
    shown = show(ch)
    desc = f"`{shown}` ({cp})" if shown == ch and not ch.isspace() else cp
    return Diagnostic("E104", f"invalid character {desc}", Span(pos, pos + 1), helps=tuple(helps))


def _bracket_help(text: str, pos: int) -> str:
    """`IN [1, 2]` is `IN (1, 2)`: the list as the user wrote it, in parentheses."""
    close = text.find("]", pos)
    items = text[pos + 1 : close] if text[pos] == "[" and close > pos else ""
    if not items.strip() or len(items) > 40 or "\n" in items or "[" in items:
        items = "1, 2"
    if re.search(r"(?is)\bIN\s*$", text[:pos]):
        return f"a list is written in parentheses: `IN ({show(items)})`"
    return f"EQL has no brackets: a list is written in parentheses, `x IN ({show(items)})`"


def _unterminated_comment(text: str, pos: int) -> Diagnostic:
    return Diagnostic(
        "E109",
        "unterminated block comment",
        Span(pos, len(text)),
        helps=("close the comment with `*/`",),
    )


def _bad_number(text: str, span: Span) -> Diagnostic:
    return Diagnostic(
        "E105",
        f"invalid number literal `{show(span.text(text))}`",
        span,
        helps=(
            "numbers are digits with an optional decimal part, like 30 or 12.50;"
            " put a space between a number and a word (`30 DAYS`)",
        ),
    )


def _token_diagnostic(text: str, e: UnexpectedToken, expected: set[str] | None) -> Diagnostic:
    tok = e.token
    type_ = str(tok.type)
    if expected is None:
        expected = _expected(e)
    if type_ == "$END":
        end = tok.end_pos if isinstance(tok.end_pos, int) else len(text)
        if text.strip() == "" or not expected - {"$END"}:
            end = len(text)
        helps: list[str] = []
        if {"FIND", "EXPLAIN", "DEFINE"} <= expected:
            helps.append(
                "a statement starts with FIND, EXPLAIN, DEFINE, REFRESH, DROP, DESCRIBE or SHOW"
            )
        if text.rstrip().endswith(","):
            helps.append("a list has no trailing comma: remove the last `,`")
        return Diagnostic(
            "E102",
            f"unexpected end of input; expected {describe_expected(expected)}",
            Span(end, end),
            helps=tuple(helps),
        )
    start = tok.start_pos if isinstance(tok.start_pos, int) else 0
    end = tok.end_pos if isinstance(tok.end_pos, int) else start
    value = str(tok)
    if type_ == "SLASH" and text.startswith("/*", start):
        return _unterminated_comment(text, start)
    if type_ == "STAR" and start > 0 and text.startswith("/*", start - 1):
        return _unterminated_comment(text, start - 1)
    number = _number_run(text, start)
    if number is not None:
        return _bad_number(text, number)
    trailing = _trailing_comma(text[:start])
    if trailing is not None:
        return trailing
    return Diagnostic(
        "E101",
        f"unexpected {_describe_token(type_, value)}; expected {describe_expected(expected)}",
        Span(start, end),
        helps=tuple(_token_helps(text, type_, value, start, expected)),
    )


def _trailing_comma(before: str) -> Diagnostic | None:
    """`RETURN id, name, LIMIT 5`: the comma made `LIMIT` an item (a name), so the parser fails
    only at `5`; the mistake is the comma, outside any parentheses."""
    m = _TRAILING_COMMA.search(before)
    if m is None:
        return None
    depth = 0
    for tok in PARENS.finditer(before, 0, m.start()):
        depth += {"(": 1, ")": -1}.get(tok.group(), 0)
    if depth > 0:
        return None
    word = m.group(1).upper()
    return Diagnostic(
        "E101",
        f"trailing comma before `{word}`",
        Span(m.start(), m.start() + 1),
        helps=(
            f"remove the comma: a list ends at its last item, and `{word}` after a comma is"
            " read as one more item",
        ),
    )


def _expected(e: UnexpectedToken) -> set[str]:
    """What the parser would have accepted in the state where it failed."""
    ip = getattr(e, "interactive_parser", None)
    if ip is not None:
        try:
            return {str(t) for t in ip.accepts()} - _IGNORED
        except Exception:
            pass  # fall back to Lark's own list
    return {str(x) for x in (e.expected or ())} - _IGNORED


def _token_helps(text: str, type_: str, value: str, start: int, expected: set[str]) -> list[str]:
    helps: list[str] = []
    before = text[:start]
    keywords = {n for n in expected if _is_keyword(n)}
    if type_ == "NAME" or (_is_keyword(type_) and type_ not in expected):
        word = value.upper()
        if not before.strip() and word in _SQL_WORDS:
            helps.append("EQL is not SQL: a query starts with FIND, e.g. FIND users WHERE ...")
        elif value[:1] != "`":
            spellings = {_keyword_text(n).split()[0]: n for n in keywords}
            for match in did_you_mean(value, spellings):
                helps.append(f"did you mean `{_keyword_text(spellings[match])}`?")
    if type_ == "EQ" and before.endswith("="):
        helps.append("compare with a single `=`")
    window_expected = {"LAST", "STRING"} <= expected
    if window_expected:
        helps.append(_window_help(text, type_, value, start))
    if type_ == "_AND" and expected == {"_TO"}:
        helps.append(_range_help(text, before, start + len(value)))
    word = value.upper() if type_ == "NAME" else ""
    if word == "HAVING":
        helps.append(
            "EQL has no HAVING: WHERE tests an entity's own aggregates, e.g."
            " WHERE count(purchase) >= 3; the groups of GROUP BY cannot be filtered"
        )
    if (
        word == "WITHIN"
        or (type_ == "_THEN" and _DID_PATH_BEFORE.search(before))
        or (type_ == "MINUS" and text.startswith("->", start) and _DID_PATH_BEFORE.search(before))
    ):
        helps.append(_SEQUENCES)
        m = _COUNT_UNIT_AFTER.match(text, start + len(value)) if word == "WITHIN" else None
        if m:
            window = f"DURING LAST {m.group(1)} {m.group(2).upper()}"
            helps.append(f"for the events of a time window write `{window}`")
    if expected == {"INT", "PARAM"} and re.search(r"(?is)\bLIMIT\s*$", before):
        helps.append(
            "LIMIT takes a whole number from 0 (`LIMIT 10`) or a parameter (`LIMIT $n`);"
            " leave LIMIT out for all rows"
        )
    if type_ in _CLAUSES and type_ not in expected:
        if type_ == "_DURING" and _DID_FILTER_BEFORE.search(before):
            pass  # the DID hint below says it
        elif type_ == "_DURING" and re.match(r"(?is)\s*FIND\s+EVENTS\b", text):
            helps.append("in FIND EVENTS the DURING window comes right after the stream name")
        elif type_ == "_DURING":
            helps.append(
                "a window belongs to an aggregate or DID, e.g. count(purchase DURING LAST 30 DAYS)"
            )
        else:
            helps.append(_CLAUSE_ORDER)
    if _DID_FILTER_BEFORE.search(before):
        helps.append(
            "DID's own WHERE takes a single condition; put a longer one in parentheses:"
            " DID purchase WHERE (channel = 'app' AND amount > 100) DURING LAST 30 DAYS"
        )
    if _AS_OF_BEFORE.search(before):
        helps.append(
            "the query's AS OF comes last; to read a tag's earlier value write it in"
            " parentheses: (value_tier AS OF '2026-10-01')"
        )
    if before.rstrip().endswith(";"):
        helps.append("write one statement per query")
    if re.match(r"(?is)\s*FIND\s+EVENTS\s+(WHERE|GROUP|RETURN|ORDER|LIMIT|AS)\b", text):
        helps.append(
            "FIND EVENTS starts an event query (FIND EVENTS purchase ...); to find entities"
            " named events write FIND `events`"
        )
    prev = _WORD_BEFORE.search(before)
    if (
        prev
        and prev.group(1).upper() in HARD_KEYWORDS - {"DISTINCT"}
        and type_ in _AFTER_A_NAME
        and not window_expected  # `DURING BETWEEN`: DURING cannot be a name there
    ):
        w = prev.group(1)
        helps.append(f"`{w}` is a keyword here; to use it as a name write `{w}` in backticks")
    return helps


def _window_help(text: str, type_: str, value: str, start: int) -> str:
    """Where a window must start: its two forms, in the user's own values when they are there."""
    after = start + len(value)
    if type_ == "_BETWEEN":
        m = _BETWEEN_AFTER.match(text, after)
        a, b = (m.group(1), m.group(2)) if m else ("'2026-01-01'", "'2026-02-01'")
        return (
            f"a window from a start to an end is written with TO, not BETWEEN: `DURING {show(a)}"
            f" TO {show(b)}` (from the start, up to but not including the end)"
        )
    if type_ in ("INT", "PARAM"):
        unit = _UNIT_AFTER.match(text, after)
        return f"did you mean `DURING LAST {value} {unit.group(1).upper() if unit else 'DAYS'}`?"
    return _WINDOW_FORMS


def _range_help(text: str, before: str, after: int) -> str:
    """`DURING '2026-01-01' AND '2026-02-01'` is `... TO ...`."""
    m_start = _TIMEPOINT_BEFORE.search(before)
    m_end = _TIMEPOINT_AFTER.match(text, after)
    a = m_start.group(1) if m_start else "'2026-01-01'"
    b = m_end.group(1) if m_end else "'2026-02-01'"
    return (
        f"a window from a start to an end is written with TO: `{show(a)} TO {show(b)}`"
        " (from the start, up to but not including the end)"
    )


def diagnostic_from_lark(
    e: UnexpectedInput, text: str, expected: set[str] | None = None
) -> Diagnostic:
    """One diagnostic for a Lark lexer or parser error.

    `expected` is the set of terminal names acceptable just before the offending token, if the
    caller could compute it (see `parser._expected_before`); else the failing state's is used.
    """
    if isinstance(e, UnexpectedToken):
        return _token_diagnostic(text, e, expected)
    if isinstance(e, UnexpectedCharacters):
        pos = e.pos_in_stream if isinstance(e.pos_in_stream, int) else 0
        pos = max(0, min(pos, len(text) - 1))
        return _char_diagnostic(text, pos)
    pos = e.pos_in_stream if isinstance(e.pos_in_stream, int) else len(text)
    pos = max(0, min(pos, len(text)))
    return Diagnostic("E101", "syntax error", Span(pos, pos))
