"""`eql shell`: piped statements, the interactive prompt (a real prompt_toolkit session fed by
a pipe), completion from the store's schema, and history."""

from __future__ import annotations

from pathlib import Path

import pytest
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from eql.cli import shell_cmds
from runtime import Session
from tests.cli.conftest import Run


@pytest.fixture(scope="module")
def session(cli_store: Path) -> Session:
    return Session.open(cli_store, read_only=True)


def test_piped_statements_run_in_order_and_an_error_does_not_stop_them(
    cli_store: Path, eql_cli: Run
) -> None:
    text = (
        "FIND stores RETURN count() AS n;\n"
        "\\format csv\n"
        "FIND nope;\n"
        "FIND stores\n"
        "  WHERE city = $city\n"
        "  RETURN count() AS n;\n"
        "\\param city=Shanghai\n"
        "FIND stores WHERE city = $city RETURN count() AS n\n"
    )
    done = eql_cli("shell", "--data-dir", str(cli_store), stdin=text)
    assert done.returncode == 2  # two statements failed
    assert "E201" in done.stderr and "unknown entity `nope`" in done.stderr
    assert "$city" in done.stderr  # the first use of $city had no value yet
    session = Session.open(cli_store, read_only=True)
    try:
        total = session.query("FIND stores RETURN count() AS n")["n"][0].as_py()
        shanghai = session.query(
            "FIND stores WHERE city = $city RETURN count() AS n", params={"city": "Shanghai"}
        )["n"][0].as_py()
    finally:
        session.close()
    assert f"│ {total} " in done.stdout  # the table format, first
    assert done.stdout.rstrip().endswith(f'"n"\n{shanghai}')  # then CSV, with the parameter


def test_the_statement_splitter() -> None:
    lines = ["FIND a\n", "  RETURN b;\n", "\\q\n", "FIND c; \n", "FIND d\n"]
    assert list(shell_cmds.statements(lines)) == ["FIND a\n  RETURN b", "\\q", "FIND c", "FIND d"]
    # a `;` in a string, a quoted name or a comment ends nothing; comments alone are no statement
    lines = ["FIND a WHERE s = 'x;y'; -- one\n", "FIND `b;c` /* ; */\n", "  RETURN x;\n"]
    lines += ["-- the end\n"]
    assert list(shell_cmds.statements(lines)) == [
        "FIND a WHERE s = 'x;y'",
        "-- one\nFIND `b;c` /* ; */\n  RETURN x",
    ]
    assert shell_cmds.complete("FIND a; -- done") and not shell_cmds.complete("FIND a -- ;")
    assert shell_cmds.complete("\\q") and not shell_cmds.complete("FIND a WHERE s = ';'")


def test_the_prompt_runs_multi_line_input_and_keeps_the_session(
    session: Session, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = shell_cmds.ShellState(session)
    history = tmp_path / "history"
    with create_pipe_input() as pipe:
        prompt = shell_cmds.prompt_session(
            shell_cmds.complete_words(session), history, input=pipe, output=DummyOutput()
        )
        # Enter without `;` adds a line; with it, runs the text; `\q` ends the loop
        pipe.send_text("\\format ndjson\r")
        pipe.send_text("FIND stores\rRETURN count() AS n;\r")
        pipe.send_text("\\as-of 2026-10-01\r")
        pipe.send_text("FIND users WHERE DID purchase DURING LAST 30 DAYS RETURN count() AS n;\r")
        pipe.send_text("\\q\r")
        shell_cmds.run_prompt(state, prompt)
    printed = capsys.readouterr().out.splitlines()
    expected_stores = session.query("FIND stores RETURN count() AS n")["n"][0].as_py()
    expected_buyers = session.query(
        "FIND users WHERE DID purchase DURING LAST 30 DAYS RETURN count() AS n",
        as_of="2026-10-01",
    )["n"][0].as_py()
    assert printed == [f'{{"n":{expected_stores}}}', f'{{"n":{expected_buyers}}}']
    assert state.done and not state.failed
    assert "+FIND stores\n+RETURN count() AS n;" in history.read_text()  # FileHistory form


def test_completion_offers_keywords_functions_and_the_schema(session: Session) -> None:
    words = shell_cmds.complete_words(session)
    for name in ("users", "home_store", "purchase", "amount", "members", "WHERE", "sum"):
        assert name in words
    complete = shell_cmds.completer(words)

    def offered(text: str) -> set[str]:
        return {c.text for c in complete.get_completions(Document(text), None)}  # type: ignore[arg-type]

    assert "users" in offered("FIND us")
    assert "home_store" in offered("FIND users WHERE home_")
    assert {"where"} <= offered("FIND users whe")  # keywords in the case being typed
    assert "WHERE" in offered("FIND users WHE")
    assert offered("FIND users ") == set()  # nothing before the cursor to complete


def test_backslash_commands_that_fail_say_why(
    session: Session, capsys: pytest.CaptureFixture[str]
) -> None:
    state = shell_cmds.ShellState(session)
    for text in ("\\format xml", "\\as-of yesterday-ish", "\\param nothing", "\\frobnicate"):
        state.handle(text)
    said = capsys.readouterr().err
    assert "\\format 'xml'" in said and "\\as-of" in said and "NAME=VALUE" in said
    assert "unknown command \\frobnicate" in said
    assert state.failed and state.fmt.value == "table"
    state.handle("\\format csv")
    state.handle("\\format parquet")  # refused: the format stays what it was
    assert state.fmt.value == "csv"


def test_quit_stops_piped_input_and_a_read_only_write_hints_at_write(
    cli_store: Path, eql_cli: Run
) -> None:
    text = "DEFINE SEGMENT s ON users WHERE DID purchase;\n\\q\nFIND nope;\n"
    done = eql_cli("shell", "--data-dir", str(cli_store), stdin=text)
    assert "E230" in done.stderr and "--write" in done.stderr
    assert "nope" not in done.stderr  # nothing after \q ran


def test_an_unwritable_history_file_is_a_warning(
    session: Session, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with create_pipe_input() as pipe:
        prompt = shell_cmds.prompt_session(
            [], blocker / "history", input=pipe, output=DummyOutput()
        )
        pipe.send_text("\\q\r")
        shell_cmds.run_prompt(shell_cmds.ShellState(session), prompt)
    assert "warning: no history file" in capsys.readouterr().err
