"""Grammar contracts: builder callbacks for every rule, keyword sets that match the parse table,
ASTs made only of AST types (no lark Tree or Token inside)."""

from __future__ import annotations

import dataclasses
import enum
from datetime import date
from decimal import Decimal

import pytest

from eql.diagnostics import Span
from eql.syntax import ast, children, format_statement, parse, strip_spans
from eql.syntax.build_ast import AstBuilder
from eql.syntax.keywords import HARD_KEYWORDS, RESERVED_WORDS
from eql.syntax.parser import KEYWORD_PRIORITY, lark_parser
from tests.syntax.corpus import CORPUS

NODE_TYPES = {
    cls
    for cls in vars(ast).values()
    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == ast.__name__
}
PLAIN = (str, int, bool, Decimal, date, Span, type(None))


def test_every_rule_that_builds_a_node_has_a_callback() -> None:
    for rule in lark_parser().rules:
        name = rule.alias or rule.origin.name
        if name.startswith("_"):
            continue  # inlined into its parent by lark
        if rule.options.expand1 and not rule.alias and len(rule.expansion) == 1:
            continue  # `?rule` with one child: the child itself
        assert callable(getattr(AstBuilder, name, None)), f"no AstBuilder.{name} for {rule}"


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_ast_holds_only_ast_types(name: str) -> None:
    stack: list[object] = [parse(CORPUS[name])]
    while stack:
        node = stack.pop()
        assert type(node) in NODE_TYPES, type(node)
        for field in dataclasses.fields(node):  # type: ignore[arg-type]
            value = getattr(node, field.name)
            items = value if type(value) is tuple else (value,)
            for v in items:
                ok = type(v) in NODE_TYPES or type(v) in PLAIN or isinstance(v, enum.Enum)
                assert ok or type(v).__name__ == "datetime", (node, field.name, type(v))
        stack.extend(children(node))


def test_corpus_uses_every_node_type() -> None:
    seen: set[type] = set()
    for text in CORPUS.values():
        stack: list[object] = [parse(text)]
        while stack:
            node = stack.pop()
            seen.add(type(node))
            stack.extend(children(node))
    assert NODE_TYPES - seen == set()


def computed_hard_keywords() -> set[str]:
    """Keywords acceptable in some parser state where a NAME is acceptable too."""
    lark = lark_parser()
    keywords = {t.name: t for t in lark.terminals if t.priority == KEYWORD_PRIORITY}
    table = lark.parser.parser.parser.parse_table
    hard: set[str] = set()
    for actions in table.states.values():
        if "NAME" in actions:
            hard |= {name for name in actions if name in keywords}
    return {name.lstrip("_") for name in hard}


def test_hard_keywords_match_the_grammar() -> None:
    assert computed_hard_keywords() == set(HARD_KEYWORDS)


def test_every_keyword_is_whole_word_and_case_insensitive() -> None:
    lark = lark_parser()
    keyword_terminals = [t for t in lark.terminals if t.priority == KEYWORD_PRIORITY]
    assert len(keyword_terminals) > 50
    for t in keyword_terminals:
        assert t.pattern.type == "re" and "i" in t.pattern.flags, t


def test_hard_keywords_and_reserved_words_work_as_quoted_names() -> None:
    for word in sorted(HARD_KEYWORDS | RESERVED_WORDS | {"OF"}):
        for spelling in (word, word.lower()):
            text = f"FIND users WHERE `{spelling}` = 1 RETURN x AS `{spelling}`"
            stmt = parse(text)
            assert isinstance(stmt, ast.Find)
            printed = format_statement(stmt)
            assert f"`{spelling}`" in printed
            assert strip_spans(parse(printed)) == strip_spans(stmt)


def test_soft_keywords_print_bare() -> None:
    stmt = parse("FIND users RETURN day(time) AS day, last, segment, first AS first")
    assert format_statement(stmt) == (
        "FIND users\nRETURN day(time) AS day, last, segment, first AS first"
    )


def test_reserved_words_are_kept_for_later() -> None:
    assert {"FUNNEL", "RETENTION", "WITHIN", "THEN"} <= RESERVED_WORDS
