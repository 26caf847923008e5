"""ING-2, the bad-file matrix: wrong types, missing key/time columns, unknown columns, broken
encodings, truncated Parquet, empty files, directories, missing files, unknown targets.

A whole-file problem raises `FileError` with a clear message and changes nothing in the store;
bad rows are rejected while every good row is kept; no other exception ever escapes."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.files import ImportReport, import_file
from ingest.readers import FileError
from storage import Store
from tests.helpers_store import assert_no_orphans, new_store, rocks_rows, stream_rows

GOOD_CUSTOMERS = "id,name,visits\n1,one,1\n2,two,2\n"
GOOD_ORDERS = "ts,customer_id,amount\n2026-01-01T00:00:00Z,1,1.00\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A store that already holds rows and events, so that a failed import could disturb them."""
    s = new_store(tmp_path / "data")
    (tmp_path / "good.csv").write_text(GOOD_CUSTOMERS, encoding="utf-8")
    (tmp_path / "good_orders.csv").write_text(GOOD_ORDERS, encoding="utf-8")
    import_file(s, "entity", "customers", tmp_path / "good.csv")
    import_file(s, "events", "orders", tmp_path / "good_orders.csv")
    yield s
    s.close()


def state(store: Store) -> dict[str, Any]:
    return {
        "customers": rocks_rows(store, "customers"),
        "snapshot": store.entity_table("customers").to_pylist(),
        "orders": stream_rows(store, "orders"),
        "versions": store.version("customers"),
        "ledger": store.imports(),
        "rejects": sorted(p.name for p in (store.data_dir / "rejects").glob("*")),
    }


def parquet_bytes(rows: int = 20_000) -> bytes:
    table = pa.table(
        {"id": pa.array(range(rows), pa.int64()), "name": [f"name {i}" for i in range(rows)]}
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="none")
    return bytes(sink.getvalue().to_pybytes())


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    target: str
    name: str
    content: bytes | Callable[[Path], None] | None  # None: do not create the file
    message: str  # must be in FileError.message
    hint: str = ""  # must be in FileError.hint
    kwargs: tuple[tuple[str, Any], ...] = ()
    file_is_target: bool = False  # the error names the target, not a file


def _mkdir(path: Path) -> None:
    path.mkdir()


FILE_ERRORS = [
    Case(
        "missing-key-column",
        "entity",
        "customers",
        "k.csv",
        b"name,visits\nx,1\n",
        "missing the key column 'id'",
        "one of: name, visits",
    ),
    Case(
        "missing-key-misspelt",
        "entity",
        "customers",
        "k.csv",
        b"idd,name\n5,x\n",
        "missing the key column 'id'",
        "did you mean 'idd'?",
        kwargs=(("allow_extra_columns", True),),
    ),
    Case(
        "missing-key-renamed",
        "entity",
        "customers",
        "k.csv",
        b"ident,name\n5,x\n",
        "missing the key column 'id'",
        "one of: ident, name",
        kwargs=(("allow_extra_columns", True),),
    ),
    Case(
        "missing-time-column",
        "events",
        "orders",
        "t.csv",
        b"customer_id,amount\n1,1.00\n",
        "missing the time column 'ts'",
    ),
    Case(
        "missing-required-column",
        "events",
        "orders",
        "r.csv",
        b"ts,qty\n2026-01-01T00:00:00Z,1\n",
        "missing the required column 'amount'",
    ),
    Case(
        "unknown-column",
        "entity",
        "customers",
        "u.csv",
        b"id,name,scroe\n1,a,2\n",
        "unknown column 'scroe' for customers",
        "did you mean 'score'?; or pass --allow-extra-columns to ignore it",
    ),
    Case(
        "unknown-columns",
        "entity",
        "customers",
        "u.csv",
        b"id,zzz,name,yyy\n1,a,b,c\n",
        "2 unknown columns for customers: 'zzz', 'yyy'",
        "or pass --allow-extra-columns to ignore them",
    ),
    Case(
        "unknown-column-jsonl",
        "events",
        "orders",
        "u.jsonl",
        b'{"ts": "2026-01-01T00:00:00Z", "amount": 1, "channnel": "app"}\n',
        "unknown column 'channnel' for orders",
        "did you mean 'channel'?",
    ),
    Case(
        "unknown-column-parquet",
        "entity",
        "customers",
        "u.parquet",
        lambda p: pq.write_table(pa.table({"id": [1], "nmae": ["x"]}), p),
        "unknown column 'nmae' for customers",
        "did you mean 'name'?",
    ),
    Case(
        "latin1-header",
        "entity",
        "customers",
        "h.csv",
        "id,name,café\n1,a,b\n".encode("latin-1"),
        "the header line is not valid UTF-8 (byte 11)",
        "save the file as UTF-8",
    ),
    Case(
        "truncated-parquet",
        "entity",
        "customers",
        "t.parquet",
        lambda p: p.write_bytes(parquet_bytes()[: len(parquet_bytes()) // 2]),
        "not a readable Parquet file",
        "truncated",
    ),
    Case(
        "truncated-parquet-footer",
        "entity",
        "customers",
        "t.parquet",
        lambda p: p.write_bytes(parquet_bytes()[:-3]),
        "not a readable Parquet file",
        "truncated",
    ),
    Case(
        "csv-named-parquet",
        "entity",
        "customers",
        "c.parquet",
        b"id,name\n7,seven\n",
        "not a readable Parquet file",
    ),
    Case(
        "empty-csv",
        "entity",
        "customers",
        "e.csv",
        b"",
        "empty file: no header line",
        "the first line names the columns",
    ),
    Case("blank-line-csv", "entity", "customers", "e.csv", b"\n\n", "empty file: no header line"),
    Case(
        "empty-parquet",
        "entity",
        "customers",
        "e.parquet",
        b"",
        "not a readable Parquet file",
        "truncated",
    ),
    Case("empty-jsonl", "entity", "customers", "e.jsonl", b"", "holds no rows"),
    Case("missing-file", "entity", "customers", "absent.csv", None, "file not found"),
    Case(
        "unknown-suffix",
        "entity",
        "customers",
        "c.xlsx",
        b"id\n1\n",
        "cannot tell the format from the suffix '.xlsx'",
        "pass --format",
    ),
    Case(
        "unknown-format",
        "entity",
        "customers",
        "c.csv",
        b"id\n1\n",
        "unknown format 'xml'",
        "use one of csv, parquet, jsonl",
        kwargs=(("fmt", "xml"),),
    ),
    Case(
        "duplicate-header",
        "entity",
        "customers",
        "d.csv",
        b"id,name,name\n1,a,b\n",
        "header repeats column 'name'",
    ),
    Case(
        "empty-header-name",
        "entity",
        "customers",
        "d.csv",
        b"id,,name\n1,a,b\n",
        "header column 2 has no name",
    ),
    Case(
        "unknown-entity",
        "entity",
        "customer",
        "x.csv",
        b"id\n1\n",
        "unknown entity 'customer'",
        "did you mean 'customers'?",
        file_is_target=True,
    ),
    Case(
        "unknown-stream",
        "events",
        "ordres",
        "x.csv",
        b"ts\n",
        "unknown event stream 'ordres'",
        "did you mean 'orders'?",
        file_is_target=True,
    ),
    Case(
        "unknown-stream-no-close-name",
        "events",
        "zzz",
        "x.csv",
        b"ts\n",
        "unknown event stream 'zzz'",
        "one of: orders",
        file_is_target=True,
    ),
]


@pytest.mark.parametrize("case", FILE_ERRORS, ids=[c.id for c in FILE_ERRORS])
def test_file_errors_change_nothing(case: Case, store: Store, tmp_path: Path) -> None:
    path = tmp_path / "in" / case.name
    path.parent.mkdir()
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    elif case.content is not None:
        case.content(path)
    before = state(store)
    with pytest.raises(FileError) as info:
        import_file(store, case.kind, case.target, path, **dict(case.kwargs))  # type: ignore[arg-type]
    err = info.value
    assert err.file == ("<target>" if case.file_is_target else str(path))
    assert case.message in err.message
    assert case.hint in err.hint
    assert str(err).startswith(f"{err.file}: {err.message}")
    assert "Traceback" not in str(err)
    assert state(store) == before
    assert_no_orphans(store)


def test_a_directory_is_a_file_error(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "folder.csv"
    path.mkdir()
    before = state(store)
    with pytest.raises(FileError, match="is a directory"):
        import_file(store, "entity", "customers", path)
    assert state(store) == before


@pytest.mark.parametrize(
    "content", [b"", b"\n\n", b"not json\n{broken\n"], ids=["empty", "blank", "all-invalid"]
)
def test_empty_or_all_invalid_jsonl_is_reported_as_such(
    content: bytes, store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(content)
    try:
        report = import_file(store, "entity", "customers", path)
    except FileError as err:
        assert "missing the key column" not in err.message
        assert "empty" in err.message or "no valid" in err.message
    else:
        assert report.rows_rejected == 2 and report.reject_file is not None


def _import(
    store: Store,
    tmp_path: Path,
    name: str,
    content: bytes,
    kind: str = "entity",
    target: str = "customers",
    **kw: Any,
) -> ImportReport:
    path = tmp_path / name
    path.write_bytes(content)
    return import_file(store, kind, target, path, **kw)  # type: ignore[arg-type]


def reject_lines(report: ImportReport) -> list[str]:
    assert report.reject_file is not None
    return report.reject_file.read_text(encoding="utf-8").splitlines()[1:]


def test_wrong_types_keep_good_rows(store: Store, tmp_path: Path) -> None:
    report = _import(
        store,
        tmp_path,
        "w.csv",
        b"id,visits,born\n10,1,2000-01-01\n11,one,2000-01-01\n12,3,01/02/2000\n13,4,2000-01-04\n",
    )
    assert (report.rows_imported, report.rows_rejected) == (2, 2)
    rows = rocks_rows(store, "customers")
    assert sorted(rows) == [1, 2, 10, 13]
    assert rows[13]["born"] == "2000-01-04"
    assert rows[1]["name"] == "one"  # rows from before are untouched


def test_invalid_utf8_in_a_value_rejects_only_that_row(store: Store, tmp_path: Path) -> None:
    report = _import(
        store, tmp_path, "u.csv", b"id,name\n10,fine\n11,caf\xe9\n12,\xff\xfe\n13,ok \xe2\x9c\x93\n"
    )
    path = tmp_path / "u.csv"
    assert (report.rows_read, report.rows_imported, report.rows_rejected) == (4, 2, 2)
    assert reject_lines(report) == [
        f"{path},2,name,<bytes>,not valid UTF-8 text",
        f"{path},3,name,<bytes>,not valid UTF-8 text",
    ]
    rows = rocks_rows(store, "customers")
    assert rows[10]["name"] == "fine" and rows[13]["name"] == "ok ✓"
    assert 11 not in rows and 12 not in rows


def test_invalid_utf8_in_the_key_rejects_the_row(store: Store, tmp_path: Path) -> None:
    report = _import(store, tmp_path, "k.csv", b"sku,title\nA\xff,x\nB,y\n", target="products")
    assert (report.rows_imported, report.rows_rejected) == (1, 1)
    assert sorted(rocks_rows(store, "products")) == ["B"]


def test_latin1_file_with_ascii_header_rejects_non_ascii_rows(store: Store, tmp_path: Path) -> None:
    content = "id,name\n20,Zoë\n21,plain\n22,Ångström\n".encode("latin-1")
    report = _import(store, tmp_path, "l.csv", content)
    assert (report.rows_imported, report.rows_rejected) == (1, 2)
    assert [line.split(",")[1] for line in reject_lines(report)] == ["1", "3"]
    assert rocks_rows(store, "customers")[21]["name"] == "plain"


def test_utf8_bom_header_is_accepted(store: Store, tmp_path: Path) -> None:
    report = _import(store, tmp_path, "b.csv", "\ufeffid,name\n30,bom\n".encode())
    assert report.rows_imported == 1
    assert rocks_rows(store, "customers")[30]["name"] == "bom"


def test_header_only_csv_imports_nothing(store: Store, tmp_path: Path) -> None:
    before = rocks_rows(store, "customers")
    report = _import(store, tmp_path, "h.csv", b"id,name\n")
    assert (report.rows_read, report.rows_imported, report.rows_rejected) == (0, 0, 0)
    assert rocks_rows(store, "customers") == before


def test_allow_extra_columns_ignores_them(store: Store, tmp_path: Path) -> None:
    report = _import(
        store, tmp_path, "x.csv", b"id,name,shoe_size,notes\n40,x,44,n\n", allow_extra_columns=True
    )
    assert report.rows_imported == 1
    assert rocks_rows(store, "customers")[40]["name"] == "x"
    assert "shoe_size" not in store.get("customers", 40)


def test_nested_parquet_values_are_rejected_not_fatal(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"id": pa.array([[1], [2]]), "name": ["a", "b"]}), path)
    report = import_file(store, "entity", "customers", path)
    assert (report.rows_imported, report.rows_rejected) == (0, 2)
    assert reject_lines(report) == [
        f"{path},1,id,[1],expected a whole number",
        f"{path},2,id,[2],expected a whole number",
    ]


@pytest.mark.parametrize("seed", range(6))
def test_corrupted_parquet_never_escapes_as_another_error(
    seed: int, store: Store, tmp_path: Path
) -> None:
    data = bytearray(parquet_bytes(5_000))
    rnd = random.Random(seed)
    for _ in range(rnd.choice([1, 10, 200])):
        i = rnd.randrange(4, len(data) - 4)
        data[i] = rnd.randrange(256)
    path = tmp_path / "c.parquet"
    path.write_bytes(bytes(data))
    before = state(store)
    try:
        report = import_file(store, "entity", "customers", path)
    except FileError as err:
        assert err.file == str(path) and err.message
        assert state(store) == before
    else:  # the damage hit only values: whatever was read is accounted for
        assert report.rows_imported + report.rows_rejected <= report.rows_read
    assert_no_orphans(store)
