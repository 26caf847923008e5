"""Hostile file shapes from an adversarial run (issue 10), through real `eql ingest` processes.

Very wide headers (100,000 unknown columns: refused in linear time, with a short message and a
hint that is never empty), CR-only line endings (old Mac files: read like any other), header fields
longer than Python's csv field limit and than pyarrow's block size, header lines with no end, and
UTF-8 byte order marks at the start of CSV and JSON-lines files (skipped; no row is lost).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.files import import_file
from ingest.readers import FileError
from storage import Store
from tests.helpers_store import CUSTOMER_COLUMNS, ROOT, new_store, rocks_rows

EQL = Path(sys.executable).parent / "eql"
TIMEOUT = 60.0  # seconds: generous; the wide files take well under a few seconds when linear
WIDE = 100_000
MESSAGE_MAX = 1_000  # characters of stderr allowed for a refused file, however wide
HEADER_MAX = 64 << 20  # bytes: a longer first line is not taken for a CSV header


def eql(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    env.pop("EQL_DEBUG", None)
    return subprocess.run(
        [str(EQL), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def ingest(
    data: Path, path: Path, *extra: str, target: str = "customers"
) -> subprocess.CompletedProcess[str]:
    kind = "--entity" if target == "customers" else "--events"
    return eql("ingest", "--data-dir", str(data), kind, target, str(path), *extra)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    new_store(folder).close()
    return folder


def customers(data: Path) -> dict[object, dict[str, object]]:
    with Store.open(data, read_only=True) as store:
        return rocks_rows(store, "customers")


def error_and_hint(stderr: str) -> tuple[str, str]:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    hints = [line.strip() for line in stderr.splitlines() if line.strip().startswith("hint:")]
    assert len(errors) == 1, stderr
    assert len(hints) == 1, stderr
    return errors[0], hints[0].removeprefix("hint:").strip()


# --- very wide headers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "known",
    [("id", "name"), CUSTOMER_COLUMNS],
    ids=["some-schema-columns", "every-schema-column"],
)
def test_100k_unknown_columns_are_refused_briefly(
    known: tuple[str, ...], data: Path, tmp_path: Path
) -> None:
    path = tmp_path / "wide.csv"
    names = [*known, *(f"extra_{i}" for i in range(WIDE))]
    row = ["1", *(["x"] * (len(names) - 1))]
    path.write_text(",".join(names) + "\n" + ",".join(row) + "\n", encoding="utf-8")
    proc = ingest(data, path)
    assert proc.returncode == 2, proc.stderr
    assert "internal error" not in proc.stderr
    assert len(proc.stderr) < MESSAGE_MAX, proc.stderr[:2_000]
    error, hint = error_and_hint(proc.stderr)
    assert f"{path}: 100,000 unknown columns for customers" in error
    assert "'extra_0', 'extra_1'" in error and "99,995 more" in error
    assert hint and not hint.startswith("one of: ;") and "one of: ;" not in hint
    assert "--allow-extra-columns" in hint
    if known == CUSTOMER_COLUMNS:  # nothing left to suggest: say where the columns are listed
        assert "eql schema show" in hint
    else:
        assert "balance" in hint  # a column of customers the file lacks
    assert customers(data) == {}


def test_100k_unknown_columns_are_ignored_when_allowed(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    names = ["id", "name", *(f"extra_{i}" for i in range(WIDE))]
    rows = [",".join([str(k), f"n{k}", *(["x"] * WIDE)]) for k in (1, 2)]
    path.write_text(",".join(names) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    proc = ingest(data, path, "--allow-extra-columns")
    assert proc.returncode == 0, proc.stderr[:2_000]
    assert {k: v["name"] for k, v in customers(data).items()} == {1: "n1", 2: "n2"}


def test_jsonl_with_100k_distinct_unknown_keys_is_refused_briefly(
    data: Path, tmp_path: Path
) -> None:
    """One new key per line: a dense table of them would be quadratic in time and memory."""
    path = tmp_path / "wide.jsonl"
    lines = [f'{{"id": {i}, "name": "n", "extra_{i}": 1}}' for i in range(WIDE)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = ingest(data, path)
    assert proc.returncode == 2, proc.stderr[:2_000]
    assert len(proc.stderr) < MESSAGE_MAX, proc.stderr[:2_000]
    error, hint = error_and_hint(proc.stderr)
    assert "100,000 unknown columns for customers" in error and hint
    assert customers(data) == {}


def test_a_few_unknown_columns_are_all_named(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    path.write_text("id,foo,name,bar,baz\n1,a,b,c,d\n", encoding="utf-8")
    with Store.open(data) as store, pytest.raises(FileError) as info:
        import_file(store, "entity", "customers", path)
    assert info.value.message == "3 unknown columns for customers: 'foo', 'bar', 'baz'"
    assert info.value.hint.endswith("or pass --allow-extra-columns to ignore them")


def test_did_you_mean_is_given_for_the_first_unknown_columns(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "typos.csv"
    names = ["id", "nmae", "scroe", *(f"extra_{i}" for i in range(WIDE))]
    path.write_text(",".join(names) + "\n" + ",".join(["1"] * len(names)) + "\n", encoding="utf-8")
    with Store.open(data) as store, pytest.raises(FileError) as info:
        import_file(store, "entity", "customers", path)
    assert info.value.message.startswith("100,002 unknown columns for customers: 'nmae', 'scroe'")
    assert "did you mean 'name' for 'nmae', 'score' for 'scroe'?" in info.value.hint
    assert len(str(info.value)) < MESSAGE_MAX


def test_a_missing_key_among_100k_columns_has_a_short_hint(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "nokey.csv"
    names = ["name", *(f"extra_{i}" for i in range(WIDE))]
    path.write_text(",".join(names) + "\n" + ",".join(["1"] * len(names)) + "\n", encoding="utf-8")
    proc = ingest(data, path, "--allow-extra-columns")
    assert proc.returncode == 2, proc.stderr[:2_000]
    assert len(proc.stderr) < MESSAGE_MAX, proc.stderr[:2_000]
    error, hint = error_and_hint(proc.stderr)
    assert "missing the key column 'id'" in error
    assert hint.startswith("one of: name, extra_0") and "more" in hint


# --- line endings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", [True, False], ids=["clean", "with-a-bad-value"])
def test_cr_only_line_endings_are_read(typed: bool, data: Path, tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    visits = "3" if typed else "three"
    path.write_bytes(f'id,name,visits\r1,one,1\r2,"two\rlines",2\r3,three,{visits}\r'.encode())
    proc = ingest(data, path)
    assert proc.returncode == (0 if typed else 1), proc.stderr
    rows = customers(data)
    assert rows[1]["name"] == "one" and rows[1]["visits"] == 1
    assert rows[2]["name"] == "two\rlines" and rows[2]["visits"] == 2
    if typed:
        assert rows[3]["visits"] == 3
    else:
        assert 3 not in rows
        rejects = next((data / "rejects").glob("mac.csv.*.rejects.csv")).read_text("utf-8")
        assert f"{path},3,visits,three,expected a whole number" in rejects


def test_crlf_line_endings_are_read(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "dos.csv"
    path.write_bytes(b"id,name\r\n1,one\r\n2,two\r\n")
    proc = ingest(data, path)
    assert proc.returncode == 0, proc.stderr
    assert {k: v["name"] for k, v in customers(data).items()} == {1: "one", 2: "two"}


# --- long header fields ---------------------------------------------------------------------------


def test_a_header_field_over_the_csv_field_limit_is_read(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    long_name = "x" * 140_000  # Python's csv module refuses fields over 131,072 characters
    path.write_text(f"id,name,{long_name}\n1,one,a\n", encoding="utf-8")
    proc = ingest(data, path, "--allow-extra-columns")
    assert proc.returncode == 0, proc.stderr[:2_000]
    assert customers(data)[1]["name"] == "one"


def test_a_long_unknown_header_field_is_named_briefly(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(f"id,name,{'x' * 140_000}\n1,one,a\n", encoding="utf-8")
    proc = ingest(data, path)
    assert proc.returncode == 2, proc.stderr[:2_000]
    assert len(proc.stderr) < MESSAGE_MAX, proc.stderr[:2_000]
    error, hint = error_and_hint(proc.stderr)
    assert f"{path}: unknown column 'xxxx" in error and "(140,000 characters)" in error
    assert hint


def test_a_header_over_pyarrows_block_size_is_read(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "huge-header.csv"
    long_name = "y" * (17 << 20)  # the CSV reader's blocks are 16 MiB
    path.write_text(f"id,name,{long_name}\n1,one,a\n2,two,b\n", encoding="utf-8")
    proc = ingest(data, path, "--allow-extra-columns")
    assert proc.returncode == 0, proc.stderr[:2_000]
    assert {k: v["name"] for k, v in customers(data).items()} == {1: "one", 2: "two"}


def test_a_header_line_without_an_end_is_refused(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "no-line-end.csv"
    path.write_bytes(b"id,name," + b"z" * (HEADER_MAX + 10))
    proc = ingest(data, path)
    assert proc.returncode == 2, proc.stderr[:2_000]
    error, hint = error_and_hint(proc.stderr)
    assert f"{path}: the header line is longer than {HEADER_MAX >> 20} MiB" in error
    assert hint


# --- byte order marks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bom.jsonl", '\ufeff{"id": 1, "name": "one"}\n{"id": 2, "name": "two"}\n'),
        ("bom.csv", "\ufeffid,name\n1,one\n2,two\n"),
        ("bom-typed.csv", "\ufeffid,name,visits\n1,one,5\n2,two,6\n"),
        ("bom-cr.csv", "\ufeffid,name\r1,one\r2,two\r"),
        ("bom-crlf.jsonl", '\ufeff{"id": 1, "name": "one"}\r\n{"id": 2, "name": "two"}\r\n'),
    ],
)
def test_a_utf8_bom_is_skipped(name: str, content: str, data: Path, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    proc = ingest(data, path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 of 2 rows" in proc.stdout
    assert {k: v["name"] for k, v in customers(data).items()} == {1: "one", 2: "two"}
    assert not (data / "rejects").exists() or not list((data / "rejects").iterdir())


def test_a_bom_only_jsonl_file_is_empty(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "bom-only.jsonl"
    path.write_bytes("\ufeff\n".encode())
    proc = ingest(data, path)
    assert proc.returncode == 2, proc.stderr
    assert f"error: {path}: empty file: it holds no rows" in proc.stderr


# --- reject files -------------------------------------------------------------------------------


def test_a_reject_folder_that_cannot_be_made_is_a_file_error(data: Path, tmp_path: Path) -> None:
    path = tmp_path / "dirty.csv"
    path.write_text("id,name,visits\n1,one,1\n2,two,many\n", encoding="utf-8")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the reject folder should be\n", encoding="utf-8")
    proc = ingest(data, path, "--rejects", str(blocker / "rejects"))
    assert proc.returncode == 2, proc.stderr
    error, hint = error_and_hint(proc.stderr)
    assert f"{path}: cannot write the reject file {blocker / 'rejects'}" in error
    assert "nothing was imported" in error and "--rejects" in hint
    assert customers(data) == {}
