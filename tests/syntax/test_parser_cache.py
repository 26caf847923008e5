"""The on-disk cache of the analysed grammar (eql/syntax/parser.py): a fresh strict build and a
cached load give the same parser, a bad file is rebuilt, and the name follows the inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from eql.syntax import parser
from tests.syntax.corpus import SKETCH


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EQL_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_a_fresh_build_is_strict_and_parses_like_the_cached_one(cache_dir: Path) -> None:
    fresh = parser.build_parser(cache=False)
    assert fresh.options.strict is True  # the conflict proof runs on every fresh build
    assert fresh.source_path != "<deserialized>"
    parser.build_parser(cache=True)  # writes the file
    loaded = parser.build_parser(cache=True)
    assert loaded.source_path == "<deserialized>"  # lark's mark of a parser loaded from a file
    for name, text in SKETCH.items():
        assert loaded.parse(text) == fresh.parse(text), name
    assert [str(t.pattern) for t in loaded.terminals] == [str(t.pattern) for t in fresh.terminals]


def test_the_file_lives_in_the_configured_directory_with_a_digest_name(cache_dir: Path) -> None:
    parser.build_parser(cache=True)
    target = parser.parser_cache_file()
    assert target.parent == cache_dir
    assert target.is_file()
    assert target.name.startswith("grammar-") and len(target.stem) == len("grammar-") + 32


def test_an_unreadable_file_is_rebuilt_and_rewritten(cache_dir: Path) -> None:
    target = parser.parser_cache_file()
    target.write_bytes(b"not a lark cache\n")
    rebuilt = parser.build_parser(cache=True)
    assert rebuilt.source_path != "<deserialized>"
    assert rebuilt.parse(SKETCH["users_in_shanghai"]) is not None
    assert parser.build_parser(cache=True).source_path == "<deserialized>"


def test_a_file_changed_in_one_byte_is_not_used(cache_dir: Path) -> None:
    parser.build_parser(cache=True)
    target = parser.parser_cache_file()
    raw = bytearray(target.read_bytes())
    at = raw.index(b"find")  # a keyword's pattern: a parser built from it would misread FIND
    raw[at : at + 4] = b"fimd"
    target.write_bytes(bytes(raw))
    rebuilt = parser.build_parser(cache=True)
    assert rebuilt.source_path != "<deserialized>"  # the digest failed: built afresh
    assert rebuilt.parse("FIND users") == parser.build_parser(cache=False).parse("FIND users")
    assert b"fimd" not in target.read_bytes()  # and written again, whole


def test_a_directory_others_may_write_is_not_used(cache_dir: Path) -> None:
    cache_dir.chmod(0o777)
    assert parser.build_parser(cache=True).source_path != "<deserialized>"
    assert not parser.parser_cache_file().exists()  # a pickle others could swap: never written


def test_the_name_changes_with_the_grammar(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = parser.parser_cache_file()
    text = parser.grammar_text()
    monkeypatch.setattr(parser, "grammar_text", lambda: text + "\n// changed\n")
    assert parser.parser_cache_file() != before


def test_an_unwritable_directory_only_costs_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("EQL_CACHE_DIR", str(blocker / "eql"))
    built = parser.build_parser(cache=True)
    assert built.parse(SKETCH["users_in_shanghai"]) is not None
