"""`eql segment export|split|changes` on a refreshed segment, through the real CLI."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

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
