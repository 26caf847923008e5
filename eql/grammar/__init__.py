"""The EQL grammar file (`eql.lark`) and a loader for its text.

Holds no parser: eql/syntax/parser.py builds the Lark parser from this text. Imports only the
standard library.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["grammar_text"]


def grammar_text() -> str:
    """The text of `eql.lark`, read from the installed package."""
    return resources.files(__name__).joinpath("eql.lark").read_text(encoding="utf-8")
