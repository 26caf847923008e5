"""EQL-1: mutated and random EQL. Only `EqlError` may escape `parse`; every diagnostic has an E1xx
code and a span inside the input; no parse takes a second. A mutant that still parses must also
round-trip through the printer.

The default run tries about 2000 inputs; set EQL_FUZZ_EXAMPLES to scale it (CI long tier: 10000
per test).
"""

from __future__ import annotations

import os
import re
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eql.diagnostics import EqlError
from eql.syntax import ast, format_statement, parse, strip_spans
from tests.syntax import strategies
from tests.syntax.corpus import CORPUS

EXAMPLES = int(os.environ.get("EQL_FUZZ_EXAMPLES", "700"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CODE = re.compile(r"E1[0-9][0-9]")
TOKEN = re.compile(
    r"'(?:[^']|'')*'?|`(?:[^`]|``)*`?|--[^\n]*|/\*[\s\S]*?(?:\*/|$)|\$?\w+|[^\w\s]|\s+"
)
JUNK = [
    "'", "`", '"', "\x00", "é", "名", "😀", "\u202e", "\u00a0", "(", ")", ",", ".", ";", "--",
    "/*", "*/", "$", "$x", "AND", "OR", "NOT", "DID", "WHERE", "DURING", "LAST", "30", "DAYS",
    "AS OF", "AS", "IN", "SEGMENT", "CASE", "WHEN", "THEN", "ELSE", "END", "=", "<>", "!", "&&",
    "||", "1.2.3", "30DAYS", "99999999999999999999999", "DATE '2026-99-01'", "TIMESTAMP 'x'",
    "\t", "\n", " ", "FIND", "EVENTS", "count(", "*", "DISTINCT", "''", "``", "funnel", "\r\n",
    "\\", "GROUP BY", "ORDER BY", "LIMIT", "TO", "0.5", "-", "+", "%", "/", "IS NULL", "BETWEEN",
    "LIKE", "EXPLAIN", "DEFINE", "TAG", "ON", "K", "SEED", "FEATURES", "SHOW", "TAGS", "NULLS",
    "FIRST", "DESC", "'; DROP TABLE x; --", "SELECT", "FOR", "MEMBERSHIP",
]  # fmt: skip
parse("FIND users")  # build the parser once, before anything is timed

VOCAB = [w for w in JUNK if w.strip()] + ["users", "purchase", "amount", "x", "1", "'a'", "$p"]


def check(text: str) -> None:
    # CPU time, so that other processes on a busy machine cannot fail the hang guard
    start = time.process_time()
    try:
        stmt = parse(text)
    except EqlError as e:
        assert e.diagnostics
        for d in e.diagnostics:
            assert CODE.fullmatch(d.code), d
            assert d.span is not None, d
            assert 0 <= d.span.start <= d.span.end <= len(text), (d, len(text))
            assert d.message
        assert e.render()
        assert len(e.to_json()) == len(e.diagnostics)
    else:
        printed = format_statement(stmt)
        assert strip_spans(parse(printed)) == strip_spans(stmt), printed
    elapsed = time.process_time() - start
    assert elapsed < 1.0, f"parse took {elapsed:.2f}s"  # a hang guard, not a benchmark


@st.composite
def mutants(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    toks = TOKEN.findall(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "swap", "dup", "char", "cut", "case"]))
        i = draw(st.integers(0, max(0, len(toks) - 1)))
        if op == "delete" and toks:
            del toks[i]
        elif op == "insert":
            toks.insert(i, draw(st.one_of(st.sampled_from(JUNK), st.text(max_size=3))))
        elif op == "swap" and len(toks) > 1:
            j = draw(st.integers(0, len(toks) - 1))
            toks[i], toks[j] = toks[j], toks[i]
        elif op == "dup" and toks:
            toks.insert(i, toks[i])
        elif op == "char" and toks:
            tok = toks[i]
            k = draw(st.integers(0, len(tok)))
            toks[i] = tok[:k] + draw(st.characters()) + tok[k + 1 :]
        elif op == "cut":
            toks = toks[:i]
        elif op == "case" and toks:
            toks[i] = toks[i].swapcase()
    return "".join(toks)


CORPUS_TEXTS = st.sampled_from(sorted(CORPUS.values()))
PRINTED = strategies.statements(max_leaves=6).map(format_statement)


@SETTINGS
@given(mutants(CORPUS_TEXTS))
def test_mutated_corpus(text: str) -> None:
    check(text)


@SETTINGS
@given(mutants(PRINTED))
def test_mutated_generated_statements(text: str) -> None:
    check(text)


@settings(SETTINGS, max_examples=max(1, EXAMPLES * 3 // 7))
@given(st.lists(st.sampled_from(VOCAB), max_size=25).map(" ".join))
def test_token_soup(text: str) -> None:
    check(text)


@settings(SETTINGS, max_examples=max(1, EXAMPLES * 3 // 7))
@given(st.text(max_size=60))
def test_arbitrary_text(text: str) -> None:
    check(text)


def test_known_nasty_inputs() -> None:
    for text in [
        "",
        " ",
        "\x00",
        "'",
        "`",
        "/*",
        "--",
        "$",
        ";",
        "FIND",
        "FIND users WHERE",
        "FIND users WHERE (",
        "FIND users WHERE x = '",
        "FIND users WHERE x = 1 /*",
        "FIND users WHERE x = 1.",
        "FIND users WHERE x = .5",
        "FIND users WHERE x = 1e",
        "FIND users WHERE `",
        "FIND users WHERE ``",
        "EXPLAIN",
        "EXPLAIN MEMBERSHIP",
        "DEFINE CLUSTERS c ON users K 4 SEED 7 FEATURES ()",
        "FIND users WHERE count(",
        "FIND users WHERE count(*",
        "FIND users WHERE count(DISTINCT)",
        "FIND users WHERE DID",
        "FIND users WHERE x IN (1,)",
        "FIND users RETURN x AS",
        "FIND users AS OF",
        "FIND users WHERE (x AS OF)",
        "\ufeffFIND users",
        "FIND users\u2028WHERE x = 1",
        "FIND users WHERE x = 'a' 'b'",
        "FIND users WHERE x = DATE '2026-01-01' '",
        "FIND users WHERE x = " + "9" * 5000,
        "FIND users WHERE x = 1." + "0" * 5000,
    ]:
        check(text)


def test_a_valid_statement_is_a_statement() -> None:
    stmt = parse("FIND users")
    assert isinstance(stmt, ast.Find)
