"""docs/errors.md: every E1xx section's `eql` example fails with that code; the sample renders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eql.diagnostics import EqlError
from eql.syntax import parse

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
SECTION = re.compile(r"^### (E1\d\d): .*?(?=^### |^## |\Z)", re.M | re.S)
EQL_BLOCK = re.compile(r"```eql\n(.*?)```", re.S)


def sections() -> dict[str, str]:
    return {m.group(1): m.group(0) for m in SECTION.finditer(DOC.read_text(encoding="utf-8"))}


def test_every_syntax_code_is_documented() -> None:
    assert sorted(sections()) == [f"E1{n:02d}" for n in range(1, 13)]


def runnable() -> list[str]:
    return sorted(code for code, body in sections().items() if EQL_BLOCK.search(body))


def test_only_the_size_limits_lack_a_runnable_example() -> None:
    # E106 and E107 need huge inputs, E112 text a Markdown file cannot hold (a lone surrogate):
    # test_syntax_errors.py covers them
    assert set(sections()) - set(runnable()) == {"E106", "E107", "E112"}


@pytest.mark.parametrize("code", runnable())
def test_documented_example_gives_its_code(code: str) -> None:
    block = EQL_BLOCK.search(sections()[code])
    assert block is not None
    with pytest.raises(EqlError) as info:
        parse(block.group(1))
    assert info.value.diagnostics[0].code == code, info.value.render()


def test_rendered_sample_is_what_the_parser_prints() -> None:
    text = DOC.read_text(encoding="utf-8")
    sample = re.search(r"```text\n(error\[E101\].*?)\n```", text, re.S)
    assert sample is not None
    with pytest.raises(EqlError) as info:
        parse("FIND users\nWERE home_store.city = 'Shanghai'")
    assert info.value.render() == sample.group(1)
