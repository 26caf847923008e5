"""`eql segment export|split|changes` on a refreshed segment, through the real CLI; a version
the segment does not have, a segment never defined and one never refreshed are errors (exit 2)
that say what exists."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from eql.cli.main import app
from ingest.demo import generate_demo_files
from ingest.files import import_file
from runtime import WRITE, Session
from storage import Store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("seg-cli")
    store = Store.create(base / "store", (ROOT / "examples/retail/schema.yaml").read_text(), "r")
    for f in generate_demo_files(base / "files", users=1500, seed=3):
        if not f.dirty:
            import_file(store, f.kind, f.target, f.path)
    session = Session(store)
    session.execute(
        "DEFINE SEGMENT buyers ON users WHERE DID purchase DURING LAST 30 DAYS", permissions=WRITE
    )
    for day in (1, 20):
        as_of = dt.datetime(2026, 10, day, tzinfo=dt.UTC)
        session.execute("REFRESH SEGMENT buyers", as_of=as_of, permissions=WRITE)
    session.execute(
        "DEFINE SEGMENT unrefreshed ON users WHERE DID purchase DURING LAST 30 DAYS",
        permissions=WRITE,
    )
    first = session.query(
        "FIND users WHERE DID purchase DURING LAST 30 DAYS RETURN id",
        as_of=dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
    )
    (base / "expected-v1.txt").write_text("\n".join(map(str, sorted(first["id"].to_pylist()))))
    expected = session.query(
        "FIND users WHERE DID purchase DURING LAST 30 DAYS RETURN id",
        as_of=dt.datetime(2026, 10, 20, tzinfo=dt.UTC),
    )
    (base / "expected.txt").write_text("\n".join(map(str, sorted(expected["id"].to_pylist()))))
    store.close()
    return base


def test_export_equals_the_equivalent_find(data_dir: Path) -> None:
    out = data_dir / "members.csv"
    r = CliRunner().invoke(
        app, ["segment", "export", "buyers", "-o", str(out), "--data-dir", str(data_dir / "store")]
    )
    assert r.exit_code == 0, r.output
    with out.open() as fh:
        keys = sorted(int(row["id"]) for row in csv.DictReader(fh))
    assert keys == [int(k) for k in (data_dir / "expected.txt").read_text().split()]
    assert keys


def test_split_is_stable_and_covers_every_member(data_dir: Path) -> None:
    rows = []
    for i in range(2):
        out = data_dir / f"split{i}.csv"
        r = CliRunner().invoke(
            app,
            [
                "segment",
                "split",
                "buyers",
                "--groups",
                "control=20,treatment=80",
                "--salt",
                "s1",
                "-o",
                str(out),
                "--data-dir",
                str(data_dir / "store"),
            ],
        )
        assert r.exit_code == 0, r.output
        with out.open() as fh:
            rows.append(sorted((row["id"], row["group"]) for row in csv.DictReader(fh)))
    assert rows[0] == rows[1]
    assert {g for _, g in rows[0]} == {"control", "treatment"}
    assert len(rows[0]) == len((data_dir / "expected.txt").read_text().split())


def test_changes_between_versions_and_bad_input(data_dir: Path) -> None:
    store = str(data_dir / "store")
    r = CliRunner().invoke(
        app, ["segment", "changes", "buyers", "--since", "1", "--to", "2", "--data-dir", store]
    )
    assert r.exit_code == 0, r.output
    assert "entered:" in r.output and "exited:" in r.output
    r = CliRunner().invoke(
        app, ["segment", "export", "nope", "-o", "/dev/null", "--data-dir", store]
    )
    assert r.exit_code == 2 and "nope" in r.output
    r = CliRunner().invoke(
        app,
        ["segment", "split", "buyers", "--groups", "a=70,b=70", "--salt", "x", "--data-dir", store],
    )
    assert r.exit_code == 2 and "at most 100" in r.output


def _eql(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["segment", *args, "--data-dir", str(data_dir / "store")])


def _keys(path: Path) -> list[int]:
    with path.open() as fh:
        return sorted(int(row["id"]) for row in csv.DictReader(fh))


def test_export_of_a_known_version(data_dir: Path) -> None:
    out = data_dir / "v1.csv"
    r = _eql(data_dir, "export", "buyers", "--version", "1", "-o", str(out))
    assert r.exit_code == 0, r.output
    expected = [int(k) for k in (data_dir / "expected-v1.txt").read_text().split()]
    assert _keys(out) == expected
    assert expected != [int(k) for k in (data_dir / "expected.txt").read_text().split()]


@pytest.mark.parametrize(
    "args",
    [
        ("export", "buyers", "--version", "9"),
        ("changes", "buyers", "--since", "1", "--to", "9"),
        ("changes", "buyers", "--since", "9", "--to", "2"),
    ],
    ids=["export", "changes-to", "changes-since"],
)
def test_an_unknown_version_is_an_error_naming_the_versions(
    data_dir: Path, args: tuple[str, ...]
) -> None:
    out = data_dir / "unknown-version.csv"
    out.unlink(missing_ok=True)
    r = _eql(data_dir, *args, *(("-o", str(out)) if args[0] == "export" else ()))
    assert r.exit_code == 2, r.output
    assert "segment buyers has no version 9: it has versions 1-2" in r.output
    assert "Traceback" not in r.output and "internal error" not in r.output
    assert not out.exists()  # no empty audience written


def test_a_segment_never_defined_is_not_defined(data_dir: Path) -> None:
    for args in (("export", "nope", "-o", "/dev/null"), ("split", "nope", "--groups", "a=50")):
        r = _eql(data_dir, *args, *(("--salt", "s") if args[0] == "split" else ()))
        assert r.exit_code == 2, r.output
        assert "segment nope is not defined" in r.output
        assert "buyers" in r.output and "SHOW SEGMENTS" in r.output  # what is defined
        assert "REFRESH" not in r.output


def test_a_segment_never_refreshed_says_refresh_it_first(data_dir: Path) -> None:
    r = _eql(data_dir, "export", "unrefreshed", "-o", "/dev/null")
    assert r.exit_code == 2, r.output
    assert "unrefreshed is defined but was never refreshed" in r.output
    assert "REFRESH SEGMENT unrefreshed" in r.output
