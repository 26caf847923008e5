"""The `eql` command as a new user meets it: `--version`, `--help` that shows defaults and
choices, a query from stdin (`-f -`), one timestamp format in every output, and a `--help`
that loads none of the heavy modules."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from tests.cli.conftest import Run

LAST_PURCHASE = (
    "FIND users WHERE id = 1 RETURN id, last(purchase.time) AS last_time, "
    "first(purchase.time) AS first_time"
)
# What `eql --help` must not import: each costs start-up (pyarrow and numpy ~0.1 s, the runtime
# with datafusion ~0.5 s, lark's grammar analysis, the CDC reader, the server).
HEAVY: tuple[str, ...] = (
    "pyarrow",
    "numpy",
    "datafusion",
    "runtime",
    "storage",
    "rocksdict",
    "lark",
    "server",
)
HEAVY += ("uvicorn", "fastapi", "pymysqlreplication", "ingest.cdc_runner", "prompt_toolkit")


def test_version(eql_cli: Run) -> None:
    done = eql_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"eql {version('eql')}"


def test_help_shows_defaults_and_choices(eql_cli: Run) -> None:
    done = eql_cli("query", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())  # the help wraps lines
    assert "<table|csv|ndjson|json|parquet>" in text
    assert "[default: table]" in text
    assert "[default: $EQL_DATA_DIR, else ./eql-data]" in text
    assert "(- for stdin)" in text
    for junk in ("<bool>", "<list[str]>", "{", "[[EQL]]"):
        assert junk not in text, junk
    assert "<bool>" not in eql_cli("ingest", "--help").stdout


def test_help_loads_no_heavy_module() -> None:
    probe = (
        "import sys\n"
        "sys.argv = ['eql', '--help']\n"
        "from eql.cli.main import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_query_from_stdin(cli_store: Path, eql_cli: Run) -> None:
    text = "FIND stores\nRETURN count() AS n\n"
    from_stdin = eql_cli(
        "query", "--data-dir", str(cli_store), "-f", "-", "--format", "csv", stdin=text
    )
    as_argument = eql_cli("query", "--data-dir", str(cli_store), text, "--format", "csv")
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout == as_argument.stdout
    assert from_stdin.stdout.splitlines()[0] == '"n"'
    assert int(from_stdin.stdout.splitlines()[1]) > 0


def test_a_bad_format_names_the_choices(cli_store: Path, eql_cli: Run) -> None:
    done = eql_cli("query", "--data-dir", str(cli_store), "--format", "xml", "FIND stores")
    assert done.returncode == 2
    assert "'xml' is not one of 'table', 'csv', 'ndjson', 'json', 'parquet'" in done.stderr


def test_one_timestamp_format_everywhere(cli_store: Path, eql_cli: Run) -> None:
    """RFC 3339 in UTC with `Z`, as the server's JSON writes them, in every text format."""
    from runtime import Session
    from server.encoding import dumps

    session = Session.open(cli_store, read_only=True)
    try:
        row = session.query(LAST_PURCHASE, as_of="2026-11-01").to_pylist()[0]
    finally:
        session.close()
    expected = json.loads(dumps(row))  # the server's rendering of the same values
    assert expected["last_time"].endswith("Z") and "T" in expected["last_time"]

    def run(fmt: str) -> str:
        done = eql_cli(
            "query",
            "--data-dir",
            str(cli_store),
            "--as-of",
            "2026-11-01",
            "--format",
            fmt,
            LAST_PURCHASE,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert json.loads(run("ndjson")) == expected
    assert json.loads(run("json")) == [expected]
    csv_row = next(csv.DictReader(io.StringIO(run("csv"))))
    assert csv_row == {k: str(v) for k, v in expected.items()}
    table = run("table")
    assert expected["last_time"] in table and expected["first_time"] in table


def test_an_unused_param_is_a_warning(cli_store: Path, eql_cli: Run) -> None:
    text = "FIND stores WHERE city = $city RETURN count() AS n"
    done = eql_cli(
        "query", "--data-dir", str(cli_store), "-p", "city=Shanghai", "-p", "cty=Beijing", text
    )
    assert done.returncode == 0, done.stderr
    assert "warning: --param cty is not used by the query" in done.stderr
    assert "city is not used" not in done.stderr
    explained = eql_cli("explain", "--data-dir", str(cli_store), "-p", "zone=1", text)
    assert "warning: --param zone is not used" in explained.stderr


def test_cdc_status_times_are_rfc3339_with_z() -> None:
    from ingest.cdc_status import _when

    assert _when(0) == "1970-01-01T00:00:00Z"
    assert _when(1_790_000_000.75) == "2026-09-21T14:13:20Z"
    assert _when(None) is None


def test_stdin_that_is_not_utf8_says_so(cli_store: Path, eql_cli: Run) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eql.cli.main", "query", "--data-dir", str(cli_store), "-f", "-"],
        input=b"FIND stores WHERE city = '\xff'",
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert b"stdin: cannot read the query" in done.stderr and b"UTF-8" in done.stderr
