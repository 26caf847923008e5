"""What a read-only store connection sees: every commit another process made before each call
(an `eql ingest`, a DEFINE and REFRESH through `eql query`), with no reopening; a result
prepared before those commits and read after them sees them; `db.refresh()` follows at once and
is still allowed; one read after `close()` is the `closed` error. The other process is a real
`eql` command run to its end before the reader looks (no timing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import eql

EQL = str(Path(sys.executable).with_name("eql"))
NEWCOMER = 900_001  # a users key the demo store does not have
COUNT = "FIND users RETURN count() AS n"


def eql_command(*args: str) -> None:
    proc = subprocess.run([EQL, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def count(db: eql.Connection) -> int:
    return int(db.query(COUNT).to_arrow().column("n")[0].as_py())


def test_a_reader_sees_other_processes_commits(writable_dir: Path, tmp_path: Path) -> None:
    reader = eql.connect(writable_dir, read_only=True)
    before = count(reader)
    unread = reader.query(COUNT)  # prepared now, read after the refresh
    users = tmp_path / "newcomer.csv"
    users.write_text(f"id,name\n{NEWCOMER},Nova Li\n", encoding="utf-8")
    data = ("--data-dir", str(writable_dir))
    eql_command("ingest", *data, "--entity", "users", str(users))
    eql_command("query", *data, f"DEFINE SEGMENT newcomers ON users WHERE id = {NEWCOMER}")
    eql_command("query", *data, "REFRESH SEGMENT newcomers")

    assert unread.to_arrow().column("n").to_pylist() == [before + 1]
    assert count(reader) == before + 1
    reader.refresh()
    assert [s["name"] for s in reader.segments()] == ["newcomers"]
    seg = reader.segment("newcomers")
    assert seg.members().column("id").to_pylist() == [NEWCOMER]
    assert seg.is_member(NEWCOMER) is True
    assert reader.read_only is True
    with pytest.raises(eql.EqlError) as info:
        seg.refresh()  # still read-only
    assert info.value.code == "E230"

    later = reader.query(COUNT)
    reader.close()
    with pytest.raises(eql.EqlError) as info:
        later.to_arrow()  # read after close: said, not a RocksDB error
    assert info.value.code == "closed"
    with pytest.raises(eql.EqlError) as info:
        reader.refresh()
    assert info.value.code == "closed"


def test_a_writable_connection_has_nothing_to_refresh(writable_dir: Path) -> None:
    with eql.connect(writable_dir) as db:
        seg = db.define("DEFINE SEGMENT members ON users WHERE is_member", refresh=True)
        session = db.session  # type: ignore[attr-defined]
        db.refresh()
        assert db.session is session  # type: ignore[attr-defined]
        assert [s["name"] for s in db.segments()] == ["members"]
        assert seg.members().num_rows > 0
