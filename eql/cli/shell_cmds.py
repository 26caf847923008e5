"""`eql shell`: an interactive EQL prompt that keeps one session (and its caches) open.

At a terminal it is a prompt_toolkit prompt: history kept in `~/.eql_history` (`--history FILE`),
multi-line input (Enter runs the text once it ends with `;`, else adds a line; Alt-Enter or
Esc-Enter runs it as it is), and completion of keywords, functions and the store's names
(entities, attributes, relations, streams, fields, tags, segments). Fed by a pipe (`eql shell <
file.eql`) it reads statements separated by `;` at the end of a line and runs them in order,
which is also how the tests drive it without a terminal.

Lines starting with a backslash set options: `\\format csv`, `\\as-of 2026-11-01` (`\\as-of` alone:
now), `\\param city=Shanghai`, `\\params` (show), `\\clear` (drop parameters), `\\help`, `\\q`.
An EQL error is printed with its code and hint and the prompt goes on; the exit code is 2 when
a piped statement failed, else 0.

May import entities, eql.cli, eql.diagnostics, eql.grammar, eql.functions and runtime.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from eql.cli.common import EXIT_USAGE, DataDir, Format, err, open_session, out, user_errors

if TYPE_CHECKING:
    from prompt_toolkit.completion import Completer

    from runtime import Session

HELP = """\
Type EQL; a statement runs when the text ends with `;` (Alt-Enter runs it as it is).
  \\format table|csv|ndjson|json   how results are printed
  \\as-of TIME                     reference time for texts without AS OF (alone: now)
  \\param NAME=VALUE               set a parameter ($NAME); \\params shows them, \\clear drops them
  \\help                           this text
  \\q                              quit (also Ctrl-D)"""

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def register(app: typer.Typer) -> None:
    app.command("shell")(shell)


def shell(
    data_dir: DataDir,
    history: Annotated[
        Path | None,
        typer.Option("--history", metavar="FILE", help="History file [default: ~/.eql_history]"),
    ] = None,
    writable: Annotated[
        bool,
        typer.Option("--write", help="Open the store for writing (DEFINE, REFRESH, DROP)"),
    ] = False,
) -> None:
    """An interactive EQL prompt on one open session (history, multi-line, completion)."""
    session = open_session(data_dir, read_only=not writable)
    state = ShellState(session)
    try:
        if sys.stdin.isatty():
            _interactive(state, history or Path.home() / ".eql_history")
        else:
            for text in statements(sys.stdin):
                state.handle(text)
                if state.done:
                    break
    finally:
        session.close()
    if state.failed and not sys.stdin.isatty():
        raise typer.Exit(EXIT_USAGE)


@dataclass
class ShellState:
    """What a shell remembers between statements: the session, the output format, the
    reference time and the parameters; `failed` once a statement has failed."""

    session: Session
    fmt: Format = Format.table
    as_of: dt.datetime | None = None
    params: dict[str, Any] = field(default_factory=dict)
    failed: bool = False
    done: bool = False

    def handle(self, text: str) -> None:
        """Run one statement or backslash command (errors are printed, never raised)."""
        text = text.strip()
        if not text:
            return
        if text.startswith("\\"):
            self._command(text)
            return
        from eql.cli.output import write
        from eql.diagnostics import EqlError
        from runtime import WRITE, Explanation

        try:
            with user_errors():
                result = self.session.execute(text, self.params, self.as_of, WRITE)
        except EqlError as exc:
            self.failed = True
            err.print(exc.render(), markup=False, highlight=False)
            if exc.code == "E230":
                err.print(
                    "  hint: start the shell with --write to change definitions", markup=False
                )
            return
        except typer.Exit:  # a store error, already printed by user_errors
            self.failed = True
            return
        if isinstance(result, Explanation):
            out.print(result.text, markup=False)
        else:
            write(result.table, self.fmt, None)

    def _command(self, text: str) -> None:
        name, _, arg = text[1:].partition(" ")
        arg = arg.strip()
        if name in ("q", "quit", "exit"):
            self.done = True
        elif name == "help":
            out.print(HELP, markup=False, highlight=False)
        elif name == "format":
            if arg == Format.parquet:
                self._fail("\\format parquet writes files: use `eql query --format parquet -o F`")
                return
            try:
                self.fmt = Format(arg)
            except ValueError:
                self._fail(f"\\format {arg!r}: expected table, csv, ndjson or json")
        elif name == "as-of":
            self._as_of(arg)
        elif name == "param":
            key, sep, value = arg.partition("=")
            if not sep or not key.strip():
                self._fail(f"\\param {arg!r}: expected NAME=VALUE")
                return
            self.params[key.strip().lstrip("$")] = value
        elif name == "params":
            for key, value in sorted(self.params.items()):
                out.print(f"${key} = {value!r}", markup=False, highlight=False)
        elif name == "clear":
            self.params.clear()
        else:
            self._fail(f"unknown command \\{name}", "\\help lists the commands")

    def _as_of(self, arg: str) -> None:
        if not arg:
            self.as_of = None
            return
        from runtime.session import parse_time

        try:
            self.as_of = parse_time(arg)
        except ValueError as exc:
            self._fail(f"\\as-of: {exc}")

    def _fail(self, message: str, hint: str = "") -> None:
        self.failed = True
        err.print(f"error: {message}", markup=False, highlight=False)
        if hint:
            err.print(f"  hint: {hint}", markup=False, highlight=False)


def statements(lines: Iterable[str]) -> Iterator[str]:
    """Statements from piped text, in order: a `;` outside strings, quoted names and comments
    ends one; a line starting with a backslash (between statements) is a command of its own;
    text holding only comments and blanks is no statement; what is left at the end is the last
    statement."""
    pending = ""
    for line in lines:
        if not _meaningful(pending) and line.lstrip().startswith("\\"):
            pending = ""
            yield line.strip()
            continue
        pending += line
        while True:
            end = _statement_end(pending)
            if end is None:
                break
            text, pending = pending[:end], pending[end + 1 :]
            if _meaningful(text):
                yield text.strip()
    if _meaningful(pending):
        yield pending.strip()


_SCAN = re.compile(r"'(?:[^']|'')*'?|`(?:[^`]|``)*`?|--[^\n]*|/\*[\s\S]*?(?:\*/|$)|;")
_NOISE = re.compile(r"--[^\n]*|/\*[\s\S]*?(?:\*/|$)|\s+")


def _statement_end(text: str) -> int | None:
    """The offset of the first `;` outside strings, quoted names and comments, if any."""
    for match in _SCAN.finditer(text):
        if match.group() == ";":
            return match.start()
    return None


def _meaningful(text: str) -> bool:
    """Whether `text` holds more than comments and whitespace."""
    return bool(_NOISE.sub("", text))


def complete(text: str) -> bool:
    """Whether the prompt's text is ready to run: a command, or a statement ended by `;` (a
    comment may follow it)."""
    stripped = text.strip()
    if not stripped or stripped.startswith("\\"):
        return True
    end = _statement_end(text)
    return end is not None and not _meaningful(text[end + 1 :])


def complete_words(session: Session) -> list[str]:
    """Every word worth completing: keywords, functions, then the store's own names."""
    from eql.functions import AGGREGATES, REGISTRY
    from eql.grammar import grammar_text

    keywords = {w.upper() for w in re.findall(r'"([a-z_]+)"i', grammar_text())}
    functions = set(REGISTRY) | set(AGGREGATES)
    names = set(schema_names(session)) - functions - keywords
    return sorted(keywords) + sorted(functions - keywords) + sorted(names)


def schema_names(session: Session) -> list[str]:
    """The store's names: entities and their keys, attributes, relations (both ways), streams
    and their fields and references, and the defined tags, segments and clusters."""
    schema = session.store.schema
    names: list[str] = []
    for entity in schema.entities:
        names += [entity.name, entity.key.name, *(a.name for a in entity.attributes)]
        for relation in entity.relations:
            names.append(relation.name)
            if relation.reverse:
                names.append(relation.reverse)
    for stream in schema.streams:
        names += [stream.name, stream.time, *(f.name for f in stream.fields)]
        names += [ref.name for ref in stream.references]
    for kind in ("TAG", "SEGMENT", "CLUSTERS"):
        names += session.audiences.names(kind)
    return names


def completer(words: list[str]) -> Completer:
    """Complete the word before the cursor from `words` (case-insensitive prefix; keywords are
    offered in the case being typed)."""
    from prompt_toolkit.completion import Completer, Completion

    class WordCompleter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Iterator[Completion]:
            before = document.text_before_cursor
            match = re.search(r"[A-Za-z_][A-Za-z0-9_]*$", before)
            prefix = match.group() if match else ""
            if not prefix:
                return
            folded = prefix.lower()
            for word in words:
                if word.lower().startswith(folded) and word != prefix:
                    shown = word.lower() if word.isupper() and prefix.islower() else word
                    yield Completion(shown, start_position=-len(prefix))

    return WordCompleter()


def prompt_session(words: list[str], history: Path | None, **io: Any) -> Any:
    """The prompt_toolkit session of the shell (`io`: input/output, for tests)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings

    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event: Any) -> None:
        buffer = event.current_buffer
        if complete(buffer.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    @bindings.add("escape", "enter")
    def _run(event: Any) -> None:
        event.current_buffer.validate_and_handle()

    kept: Any = InMemoryHistory()
    if history is not None:
        try:
            with history.open("a", encoding="utf-8"):
                pass
            kept = FileHistory(str(history))
        except OSError as exc:
            err.print(f"warning: no history file ({exc}); history lasts this session", markup=False)
    return PromptSession(
        history=kept,
        completer=completer(words),
        complete_while_typing=False,
        multiline=True,
        key_bindings=bindings,
        prompt_continuation="   ... ",
        **io,
    )


def run_prompt(state: ShellState, prompt: Any) -> None:
    """Read and run statements until `\\q` or end of input (Ctrl-D); Ctrl-C drops the line."""
    while not state.done:
        try:
            text = prompt.prompt("eql> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        for statement in statements(text.splitlines(keepends=True)):
            state.handle(statement)


def _interactive(state: ShellState, history: Path) -> None:
    out.print("EQL shell on one open session; \\help for commands, \\q to quit", markup=False)
    run_prompt(state, prompt_session(complete_words(state.session), history))
