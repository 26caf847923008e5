"""`parse(text) -> Statement`: the Lark LALR parser, built once, plus the input guards.

The grammar is eql/grammar/eql.lark. The parser is built on first use and kept for the life of
the process. Building it takes about half a second to a second, mostly strict mode proving that the
grammar has no conflicts (interegular's collision check), so the analysed grammar is also kept on
disk (lark's `save`/`load`) under `$EQL_CACHE_DIR`, else `$XDG_CACHE_HOME/eql`, else `~/.cache/eql`,
and later processes load it in a few tens of milliseconds. The file's name is a digest of the
grammar text, this module's source (the options and the keyword edit live here), lark's version and
Python's, so any change builds (and proves) it afresh; `EQL_PARSER_CACHE=0` turns the file off, and
`build_parser(cache=False)` always builds strictly (a test does so).
`AstBuilder` is passed to Lark as an inline transformer, so each reduction builds an AST node
directly and no parse tree exists. Every failure becomes an `EqlError`; Lark types stay here.

May import lark, eql.diagnostics, eql.grammar and eql.syntax.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import re
import sys
import time
from pathlib import Path
from typing import cast

import lark
from lark import Lark
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.lexer import PatternRE, TerminalDef

from eql.diagnostics import Diagnostic, EqlError, InternalError, Span
from eql.grammar import grammar_text
from eql.syntax import ast
from eql.syntax.build_ast import AstBuilder, LiteralError
from eql.syntax.errors import PARENS, diagnostic_from_lark
from eql.syntax.walk import first_too_deep

__all__ = [
    "KEYWORD_PRIORITY",
    "MAX_DEPTH",
    "MAX_QUERY_CHARS",
    "build_parser",
    "lark_parser",
    "parse",
    "parser_cache_file",
]

MAX_QUERY_CHARS = 100_000
MAX_DEPTH = 100  # levels of AST nesting, statement included
# Above this size an error's "expected ..." list comes from the failing state, without re-parsing.
_REPARSE_MAX_CHARS = 20_000
KEYWORD_PRIORITY = 2

# Characters that can separate two tokens without whitespace (see `_may_be_too_deep`).
_TOKEN_EDGES = "()'`,.;=<>!+-*/%$"


def _whole_word_keywords(t: TerminalDef) -> TerminalDef:
    """Make each case-insensitive keyword (`"where"i`) match whole words only.

    It becomes the pattern `where(?![A-Za-z0-9_])` with a priority above NAME, so `WHEREx` is a
    name (and an error) rather than WHERE followed by `x`, and the contextual lexer can still
    read `where` as a NAME in places where the keyword is not acceptable.
    """
    p = t.pattern
    if p.type == "str" and "i" in p.flags:
        t.pattern = PatternRE(re.escape(p.value) + "(?![A-Za-z0-9_])", p.flags)
        t.priority = KEYWORD_PRIORITY
    return t


def _cache_dir() -> Path:
    configured = os.environ.get("EQL_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "eql"


def parser_cache_file() -> Path:
    """Where the analysed grammar is kept; its name changes whenever anything it depends on does."""
    digest = hashlib.sha256()
    digest.update(grammar_text().encode("utf-8"))
    digest.update(Path(__file__).read_bytes())
    digest.update(f"{lark.__version__} {sys.version_info[:2]}".encode())
    return _cache_dir() / f"grammar-{digest.hexdigest()[:32]}.lark-cache"


def build_parser(cache: bool = True) -> Lark:
    """A new Lark parser: loaded from the cache file when `cache` and the file is there and
    whole, else built with `strict=True` (and, when `cache`, written to the file for the next
    process).

    The file is the digest of its payload, a newline, and the payload (`Lark.save` without the
    options given at load time): a file cut short or changed in any byte fails the digest and is
    built again. It is written under a temporary name and renamed, so a reader never sees half of
    one, and only into a directory of this user's that nobody else can write (it is a pickle).
    A file that cannot be read or written only costs the build.
    """
    options: dict[str, object] = {
        "parser": "lalr",
        "lexer": "contextual",
        # Positions come straight from tokens: the inline transformer builds AST nodes, so
        # propagate_positions (which annotates lark Trees) would only add work (~15%).
        "propagate_positions": False,
        "strict": True,
        "maybe_placeholders": False,
        "edit_terminals": _whole_word_keywords,
    }
    target = parser_cache_file() if cache else None
    if target is not None and not _private_dir(target.parent):
        target = None
    if target is not None:
        loaded = _load(target)
        if loaded is not None:
            return loaded
    parser = Lark(grammar_text(), transformer=AstBuilder(), **options)
    if target is not None:
        _save(parser, target)
    return parser


# the options lark's own cache leaves out of the file (given again when it is loaded)
_LOAD_OPTIONS: tuple[str, ...] = (
    *("transformer", "postlex", "lexer_callbacks", "use_bytes", "debug", "g_regex_flags"),
    *("regex", "propagate_positions", "tree_class", "_plugins"),
)


def _private_dir(directory: Path) -> bool:
    """Create `directory` (mode 0700) when missing; whether it is ours and only ours to write."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def _load(target: Path) -> Lark | None:
    try:
        raw = target.read_bytes()
    except OSError:
        return None
    digest, _, payload = raw.partition(b"\n")
    if digest != hashlib.sha256(payload).hexdigest().encode():
        return None
    try:
        # Lark.load() takes no options; its _load is what lark's own cache= calls with them
        return Lark.__new__(Lark)._load(io.BytesIO(payload), transformer=AstBuilder())
    except Exception:  # a payload of another lark version: build it again
        return None


def _save(parser: Lark, target: Path) -> None:
    buffer = io.BytesIO()
    parser.save(buffer, exclude_options=_LOAD_OPTIONS)
    payload = buffer.getvalue()
    scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        scratch.write_bytes(hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        os.replace(scratch, target)
    except OSError:
        with contextlib.suppress(OSError):
            scratch.unlink(missing_ok=True)
        return
    _forget_old(target)


def _forget_old(kept: Path) -> None:
    """Remove other grammar files untouched for a week (from earlier versions of eql)."""
    week_ago = time.time() - 7 * 24 * 3600
    for old in kept.parent.glob("grammar-*.lark-cache"):
        try:
            if old != kept and old.stat().st_mtime < week_ago:
                old.unlink()
        except OSError:
            pass


@functools.cache
def lark_parser() -> Lark:
    """The one Lark parser of the process (built or loaded on first call)."""
    return build_parser(cache=os.environ.get("EQL_PARSER_CACHE", "1") != "0")


def _may_be_too_deep(text: str) -> bool:
    """False when the AST cannot possibly exceed MAX_DEPTH, so the depth walk can be skipped.

    Every AST level below the statement owns at least one token, and two tokens touch without
    whitespace only next to one of `_TOKEN_EDGES`; so the token count, and with it the depth, is
    at most the number of whitespace-separated chunks plus twice the number of edge characters.
    """
    bound = len(text.split()) + 2 * sum(text.count(ch) for ch in _TOKEN_EDGES) + 5
    return bound > MAX_DEPTH


def _lone_surrogate(text: str) -> int | None:
    """Offset of the first lone UTF-16 surrogate (JSON's `\\ud800`, undecodable command-line
    bytes), which no later stage could encode; None when the text is all Unicode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return int(exc.start)
    return None


def _deep_paren(text: str) -> int | None:
    """Offset of the first `(` nested deeper than MAX_DEPTH, checked before parsing.

    Deep parentheses need no AST depth (`((x))` is just `x`) but cost parse time, so they are
    refused up front; cheap unless the text has more than MAX_DEPTH `(`.
    """
    if text.count("(") <= MAX_DEPTH:
        return None
    depth = 0
    for m in PARENS.finditer(text):
        tok = m.group()
        if tok == "(":
            depth += 1
            if depth > MAX_DEPTH:
                return m.start()
        elif tok == ")":
            depth = max(0, depth - 1)
    return None


def parse(text: str) -> ast.Statement:
    """Parse one EQL statement (an optional trailing `;` allowed). Raises `EqlError`."""
    if not isinstance(text, str):
        raise TypeError(f"parse() needs a str, not {type(text).__name__}")
    if len(text) > MAX_QUERY_CHARS:
        raise EqlError(
            [
                Diagnostic(
                    "E106",
                    f"query too long: {len(text)} characters, the limit is {MAX_QUERY_CHARS}",
                    Span(MAX_QUERY_CHARS, len(text)),
                    helps=("pass long lists as a parameter: `x IN $ids`",),
                )
            ],
            text,
        )
    surrogate = _lone_surrogate(text)
    if surrogate is not None:
        raise EqlError(
            [
                Diagnostic(
                    "E112",
                    f"the text holds a lone surrogate (U+{ord(text[surrogate]):04X}), "
                    "which is not a Unicode character",
                    Span(surrogate, surrogate + 1),
                    helps=(
                        "send the text as UTF-8: in JSON, escapes of characters beyond "
                        "U+FFFF come in pairs (`\\ud83d\\ude00`), never alone",
                    ),
                )
            ],
            text,
        )
    paren = _deep_paren(text)
    if paren is not None:
        raise EqlError([_too_deep(Span(paren, paren + 1))], text)
    try:
        stmt = cast(ast.Statement, lark_parser().parse(text))
    except UnexpectedInput as e:
        raise EqlError([_syntax_error(e, text)], text) from None
    except LiteralError as e:
        raise EqlError([e.diagnostic], text) from None
    except RecursionError:
        raise EqlError([_too_deep(Span(0, len(text)))], text) from None
    except EqlError:
        raise
    except Exception as e:  # a bug: report it as one, without the query text
        raise InternalError(f"parser failed with {type(e).__name__}") from e
    if _may_be_too_deep(text):
        deep = first_too_deep(stmt, MAX_DEPTH)
        if deep is not None:
            raise EqlError([_too_deep(deep.span)], text)
    return stmt


def _syntax_error(e: UnexpectedInput, text: str) -> Diagnostic:
    try:
        expected = None
        if isinstance(e, UnexpectedToken) and len(text) <= _REPARSE_MAX_CHARS:
            expected = _expected_before(text, e)
        return diagnostic_from_lark(e, text, expected)
    except Exception:  # wording failed (a bug): still report the error, at its position
        pos = e.pos_in_stream if isinstance(e.pos_in_stream, int) else 0
        pos = max(0, min(pos, len(text)))
        return Diagnostic("E101", "syntax error", Span(pos, pos))


def _expected_before(text: str, e: UnexpectedToken) -> set[str] | None:
    """The terminals acceptable right before the offending token (error path only).

    Lark reports the state it failed in, but an LALR parser may first make reductions that the
    offending token cannot follow (its lookahead sets are merged across contexts), which makes
    the list poorer: after `WHERE x = 1 )` it would no longer offer AND or an operator. So parse
    again, stop before that token, and ask which terminals the parser would accept there.
    """
    pos = e.token.start_pos if e.token.type != "$END" else None
    ip = lark_parser().parse_interactive(text)
    try:
        for tok in ip.iter_parse():
            if pos is not None and tok.start_pos == pos:
                break
    except (UnexpectedInput, LiteralError):
        pass  # the lexer fails at the same place: the state is the one before the token
    try:
        accepted = ip.accepts()  # type: ignore[no-untyped-call]
        return {str(t) for t in accepted}
    except Exception:
        return None


def _too_deep(span: Span) -> Diagnostic:
    return Diagnostic(
        "E107",
        f"query nested too deeply (more than {MAX_DEPTH} levels)",
        span,
        helps=("split the expression, or pass long lists as a parameter: `x IN $ids`",),
    )
